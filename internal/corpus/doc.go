// Package corpus generates realistic prompts for load tests, deterministically
// from a seed: English prose of 200-8,000 characters, source code (Go,
// Python, JavaScript), CJK text (Chinese and Japanese) and chat message
// arrays (a system message and several user/assistant turns). The texts are
// sampled and concatenated from seed passages embedded in the binary.
//
// The kinds differ in how many tokens a character costs, in both directions
// from OpenAI's characters/4 estimate: English prose costs fewer tokens than
// characters/4, code about as many or more, CJK text several times more.
// That is what makes a rate limiter's estimate error visible.
//
//	p := corpus.Generate(corpus.Prose, 1, 42) // the same prompt every time
//	// p.Instructions, p.Text (or p.Messages for corpus.Chat)
package corpus
