package fakeopenai

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAccountSpec(t *testing.T) {
	t.Setenv("FAKE_KEY_EAST", "sk-east-secret-0001")
	t.Setenv("FAKE_KEY_EMPTY", "")
	tests := []struct {
		in      string
		want    AccountSpec
		wantErr string
	}{
		{in: "east", want: AccountSpec{Name: "east"}},
		{in: "east:rpm=300,tpm=24000", want: AccountSpec{Name: "east", RPM: 300, TPM: 24000}},
		{in: "overflow:rpm=60,tpm=20000,latency=2s", want: AccountSpec{Name: "overflow", RPM: 60, TPM: 20000, Latency: 2 * time.Second}},
		{in: "a.b_C-9: rpm = 0 , latency=0", want: AccountSpec{Name: "a.b_C-9", RPM: Unlimited, Latency: NoLatency}},
		{in: "x:tpm=0,latency=150ms", want: AccountSpec{Name: "x", TPM: Unlimited, Latency: 150 * time.Millisecond}},
		{in: "x:mode=insufficient_quota,charge=tokenizer", want: AccountSpec{Name: "x", Mode: ModeInsufficientQuota, Charge: ChargeTokenizer}},
		{in: "x:models=gpt-4o-mini|gpt-4.1", want: AccountSpec{Name: "x", Models: []string{"gpt-4o-mini", "gpt-4.1"}}},
		{in: "x:key_env=FAKE_KEY_EAST", want: AccountSpec{Name: "x", APIKey: "sk-east-secret-0001"}},

		{in: "", wantErr: `account "": the name must match`},
		{in: ":rpm=1", wantErr: `account "": the name must match`},
		{in: "a/b:rpm=1", wantErr: `account "a/b": the name must match`},
		{in: strings.Repeat("n", 65), wantErr: "the name must match"},
		{in: "_fake:rpm=1", wantErr: `account "_fake": the name must match`},
		{in: "..", wantErr: `account "..": the name must match`},
		{in: "east:", wantErr: `account east: unknown key "" (keys: rpm, tpm, latency, charge, mode, models, key_env)`},
		{in: "east:rpm=1,", wantErr: `unknown key ""`},
		{in: "east:burst=1s", wantErr: `account east: unknown key "burst"`},
		{in: "east:rpm", wantErr: "account east: rpm needs a value: an integer 0-1000000000 (0 = unlimited)"},
		{in: "east:rpm=", wantErr: "rpm needs a value"},
		{in: "east:rpm=-1", wantErr: `account east: rpm must be an integer 0-1000000000 (0 = unlimited), got "-1"`},
		{in: "east:tpm=1.5", wantErr: `account east: tpm must be an integer 0-1000000000 (0 = unlimited), got "1.5"`},
		{in: "east:tpm=2000000000", wantErr: `tpm must be an integer 0-1000000000`},
		{in: "east:rpm=1,rpm=2", wantErr: "account east: rpm given twice"},
		{in: "east:latency=-1s", wantErr: `account east: latency must be a duration >= 0 such as 2s or 150ms (0 = none), got "-1s"`},
		{in: "east:latency=2", wantErr: `latency must be a duration`},
		{in: "east:charge=bytes", wantErr: `account east: charge must be simple, chars or tokenizer, got "bytes"`},
		{in: "east:mode=broken", wantErr: `account east: mode must be one of normal, insufficient_quota, unauthorized, model_not_found,`},
		{in: "east:models=a||b", wantErr: `account east: models must be model names separated by '|'`},
		{in: "east:key_env=FAKE_KEY_EMPTY", wantErr: "account east: key_env: environment variable FAKE_KEY_EMPTY is not set or empty"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAccountSpec(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
		})
	}
}

// FuzzParseAccountSpec checks that whatever parses is a valid spec and that
// a key read from the environment never appears in an error.
func FuzzParseAccountSpec(f *testing.F) {
	for _, s := range []string{"east", "east:rpm=300,tpm=24000", "o:latency=2s,mode=slow", "m:models=a|b", "k:key_env=FUZZ_KEY", "x:rpm=-1", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		t.Setenv("FUZZ_KEY", "sk-fuzz-secret")
		a, err := ParseAccountSpec(s)
		if err != nil {
			if strings.Contains(err.Error(), "sk-fuzz-secret") {
				t.Fatalf("error echoes the key: %v", err)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("ParseAccountSpec(%q) = %+v, invalid: %v", s, a, err)
		}
		if _, err := NewAccounts(Config{}, []AccountSpec{a}); err != nil {
			t.Fatalf("NewAccounts(%+v): %v", a, err)
		}
	})
}
