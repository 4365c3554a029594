package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	now     = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	current = HMACKey{KID: "k2", Key: []byte("current-key-0123456789abcdefghijklmnop")}
	prev    = HMACKey{KID: "k1", Key: []byte("previous-key-0123456789abcdefghijklmno")}
	rsaKey  = must(rsa.GenerateKey(rand.Reader, 2048))
	ecKey   = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	other   = must(rsa.GenerateKey(rand.Reader, 2048))
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksServer serves the RSA key as "rsa1" and the EC key as "ec1".
func jwksServer(t *testing.T) string {
	t.Helper()
	ecPub := must(ecKey.PublicKey.ECDH()).Bytes() // 0x04 || X || Y
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa1", "alg": "RS256", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "ec1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(ecPub[1:33]), "y": b64(ecPub[33:])},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func claimsWith(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "user-1", "tenant_id": "acme", "permissions": []string{"echo", "delay"},
		"iss": "https://issuer.example", "aud": "streamer",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func sign(t testing.TB, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	both := must(NewVerifier(ctx, Config{HMAC: StaticKeys{current, prev}, JWKSURL: jwksServer(t), Issuer: "https://issuer.example", Audience: "streamer"}))
	hmacOnly := must(NewVerifier(ctx, Config{HMAC: StaticKeys{current, prev}}))
	jwksOnly := must(NewVerifier(ctx, Config{JWKSURL: jwksServer(t)}))
	for _, v := range []*Verifier{both, hmacOnly, jwksOnly} {
		v.now = func() time.Time { return now }
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
	unsigned := must(jwt.NewWithClaims(jwt.SigningMethodNone, claimsWith(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType))
	want := Identity{UserID: "user-1", TenantID: "acme", Permissions: []string{"delay", "echo"}}

	tests := []struct {
		name     string
		verifier *Verifier
		give     string
		wantOK   bool
	}{
		{"hs256 current kid", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(nil)), true},
		{"hs256 previous kid (rotation)", both, sign(t, jwt.SigningMethodHS256, "k1", prev.Key, claimsWith(nil)), true},
		{"hs256 without kid uses the current key", hmacOnly, sign(t, jwt.SigningMethodHS256, "", current.Key, claimsWith(nil)), true},
		{"hs256 previous key without kid", hmacOnly, sign(t, jwt.SigningMethodHS256, "", prev.Key, claimsWith(nil)), false},
		{"hs256 unknown kid", both, sign(t, jwt.SigningMethodHS256, "k0", current.Key, claimsWith(nil)), false},
		{"hs256 kid of another key", both, sign(t, jwt.SigningMethodHS256, "k1", current.Key, claimsWith(nil)), false},
		{"rs256 via jwks", both, sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claimsWith(nil)), true},
		{"es256 via jwks", jwksOnly, sign(t, jwt.SigningMethodES256, "ec1", ecKey, claimsWith(nil)), true},
		{"rs256 signed by another key", both, sign(t, jwt.SigningMethodRS256, "rsa1", other, claimsWith(nil)), false},
		{"rs256 unknown kid", jwksOnly, sign(t, jwt.SigningMethodRS256, "nope", rsaKey, claimsWith(nil)), false},
		{"rs256 with ec kid", jwksOnly, sign(t, jwt.SigningMethodRS256, "ec1", rsaKey, claimsWith(nil)), false},
		{"rs256 without jwks", hmacOnly, sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey, claimsWith(nil)), false},
		{"alg none", both, unsigned, false},
		{"hs256 keyed with the rsa public key (confusion)", jwksOnly, sign(t, jwt.SigningMethodHS256, "rsa1", rsaPubPEM, claimsWith(nil)), false},
		{"hs384 not allowed", hmacOnly, sign(t, jwt.SigningMethodHS384, "k2", current.Key, claimsWith(nil)), false},
		{"expired", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), false},
		{"expired within leeway", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), true},
		{"no exp", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { delete(c, "exp") })), false},
		{"not yet valid", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), false},
		{"wrong issuer", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), false},
		{"wrong audience", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["aud"] = "other" })), false},
		{"audience in a list", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["aud"] = []string{"x", "streamer"} })), true},
		{"no sub", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { delete(c, "sub") })), false},
		{"no tenant", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { delete(c, "tenant_id") })), false},
		{"tenant with #", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["tenant_id"] = "a#b" })), false},
		{"tenant too long", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["tenant_id"] = strings.Repeat("t", 129) })), false},
		{"permissions cleaned", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["permissions"] = []string{"echo", "", "delay", "echo"} })), true},
		{"permissions not a list", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["permissions"] = 5 })), false},
		{"issued in the future", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), false},
		{"issued in the future within leeway", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["iat"] = now.Add(10 * time.Second).Unix() })), true},
		{"crit header", both, signWithHeader(t, "crit", []string{"exp"}), false},
		{"empty crit header", both, signWithHeader(t, "crit", []string{}), false},
		{"oversized", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", MaxTokenBytes) })), false},
		{"large but within the cap", both, sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", MaxTokenBytes/2) })), true},
		{"malformed", both, "not.a.jwt", false},
		{"empty", both, "", false},
		{"tampered payload", both, tamper(sign(t, jwt.SigningMethodHS256, "k2", current.Key, claimsWith(nil))), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.verifier.Verify(context.Background(), tt.give)
			if !tt.wantOK {
				if !errors.Is(err, ErrUnauthorized) {
					t.Errorf("Verify = %+v, %v; want ErrUnauthorized", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.ExpiresAt.IsZero() {
				t.Errorf("Verify ExpiresAt is zero")
			}
			got.ExpiresAt = time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Verify = %+v, want %+v", got, want)
			}
		})
	}
}

// signWithHeader signs valid claims with the current key, adding the header
// name: value.
func signWithHeader(t testing.TB, name string, value any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsWith(nil))
	tok.Header["kid"], tok.Header[name] = current.KID, value
	s, err := tok.SignedString(current.Key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// tamper swaps the token's tenant for another, keeping the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	body := must(base64.RawURLEncoding.DecodeString(parts[1]))
	parts[1] = b64([]byte(strings.Replace(string(body), `"acme"`, `"evil"`, 1)))
	return strings.Join(parts, ".")
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give   string
		want   []string
		action string
		allow  bool
	}{
		{`["echo","delay"]`, []string{"echo", "delay"}, "delay", true},
		{`["echo"]`, []string{"echo"}, "delay", false},
		{`["*"]`, []string{"*"}, "anything", true},
		{`"echo status"`, []string{"echo", "status"}, "status", true},
		{`[]`, []string{}, "echo", false},
	}
	for _, tt := range tests {
		var p permissions
		if err := json.Unmarshal([]byte(tt.give), &p); err != nil {
			t.Fatalf("unmarshal %s: %v", tt.give, err)
		}
		if !reflect.DeepEqual([]string(p), tt.want) {
			t.Errorf("permissions(%s) = %q, want %q", tt.give, p, tt.want)
		}
		if got := (Identity{Permissions: p}).Allows(tt.action); got != tt.allow {
			t.Errorf("Allows(%q) with %s = %v, want %v", tt.action, tt.give, got, tt.allow)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", 32)
	tests := []struct {
		give    string
		want    []HMACKey
		wantErr bool
	}{
		{give: key, want: []HMACKey{{Key: []byte(key)}}},
		{give: `{"kid":"a","key":"` + key + `"}`, want: []HMACKey{{KID: "a", Key: []byte(key)}}},
		{give: `{"kid":"b","key":"` + key + `","previous_kid":"a","previous_key":"` + key + `x"}`,
			want: []HMACKey{{KID: "b", Key: []byte(key)}, {KID: "a", Key: []byte(key + "x")}}},
		{give: "short", wantErr: true},
		{give: `{"kid":"a","key":"short"}`, wantErr: true},
		{give: `{"kid":"a","key":"` + key + `","previous_key":"` + key + `"}`, wantErr: true},
		{give: `{not json`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSecret(tt.give)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSecret(%q) = %v, %v; want %v (error %v)", tt.give, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTokenFromRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		query   map[string]string
		headers map[string]string
		want    string
	}{
		{"query", map[string]string{"token": "q"}, map[string]string{"Authorization": "Bearer h"}, "q"},
		{"header", nil, map[string]string{"authorization": "Bearer h"}, "h"},
		{"not bearer", nil, map[string]string{"Authorization": "Basic x"}, ""},
		{"none", nil, nil, ""},
	}
	for _, tt := range tests {
		if got := TokenFromRequest(tt.query, tt.headers); got != tt.want {
			t.Errorf("%s: TokenFromRequest = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestIssue(t *testing.T) {
	t.Parallel()
	v := must(NewVerifier(context.Background(), Config{HMAC: StaticKeys{current, prev}}))
	for _, key := range []HMACKey{current, prev} {
		tok, err := Issue(key, Identity{UserID: "u", TenantID: "t", Permissions: []string{"*"}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(context.Background(), tok)
		if err != nil || got.UserID != "u" || got.TenantID != "t" || !got.Allows("anything") {
			t.Errorf("Verify(Issue(%s)) = %+v, %v", key.KID, got, err)
		}
	}
	if _, err := Issue(current, Identity{UserID: "u"}, time.Minute); err == nil {
		t.Error("Issue without a tenant succeeded")
	}
}
