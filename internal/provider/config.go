package provider

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// APIs a Client speaks.
const (
	APIOpenAI = "openai" // OpenAI or an OpenAI-compatible server: Bearer key, model in the body
	APIAzure  = "azure"  // Azure OpenAI: api-key header, api-version query, deployment in the path
)

// Config configures a Client.
type Config struct {
	// BaseURL is the API's root: e.g. https://api.openai.com/v1, or for
	// Azure the resource endpoint https://NAME.openai.azure.com (the client
	// adds /openai/deployments/...). For Azure, plain http is allowed only to
	// a loopback address (a local fake), and then bypasses HTTPClient's
	// transport (openai-go's azure package dials loopback itself).
	BaseURL    string
	APIKey     string        // never logged
	Timeout    time.Duration // per request; 0 = none (the task's context still applies)
	HTTPClient *http.Client  // optional
	// API is APIOpenAI (default, also "") or APIAzure.
	API string
	// APIVersion is Azure's api-version query parameter, e.g. 2024-10-21
	// (azure only, required there; the Responses endpoint needs a version
	// that has it, 2025-03-01-preview or later).
	APIVersion string
	// Deployments maps a request's model to the Azure deployment it is sent
	// to (azure only; a model not in it is sent under its own name).
	Deployments map[string]string
}

// Validate reports a Config that cannot make a request, naming the field.
// The key is never in the message.
func (c Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("provider: BaseURL must be an absolute http or https URL")
	case c.API != "" && c.API != APIOpenAI && c.API != APIAzure:
		return fmt.Errorf("provider: API must be %q or %q, got %q", APIOpenAI, APIAzure, c.API)
	case c.API == APIAzure && c.APIVersion == "":
		return errors.New("provider: APIVersion is required with API azure")
	case c.API == APIAzure && u.Scheme == "http" && !IsLoopback(u.Hostname()):
		return errors.New("provider: BaseURL must be https with API azure (http only to a loopback address)")
	case c.API != APIAzure && (c.APIVersion != "" || len(c.Deployments) > 0):
		return errors.New("provider: APIVersion and Deployments are only for API azure")
	}
	return nil
}

// String describes the config without its key, so that no %v or %+v of
// a config (or of one that holds it) prints the key.
func (c Config) String() string {
	key := ""
	if c.APIKey != "" {
		key = "[redacted]"
	}
	return fmt.Sprintf("{BaseURL:%s APIKey:%s API:%s APIVersion:%s Deployments:%v Timeout:%v}",
		c.BaseURL, key, c.API, c.APIVersion, c.Deployments, c.Timeout)
}

// GoString is String for %#v.
func (c Config) GoString() string { return "provider.Config" + c.String() }

// Format is String for every verb: %d or %x of the struct would print the
// key's bytes otherwise.
func (c Config) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// IsLoopback reports whether host is localhost or a loopback IP: the only
// hosts openai-go's azure package sends a key to over plain http.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
