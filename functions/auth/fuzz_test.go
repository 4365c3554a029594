package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to an HS256 verifier with a current and a
// previous key, an issuer and an audience, and checks what it accepts against
// an independent reading of the token: a token is accepted only if it is at
// most MaxTokenBytes long, three segments, HS256 without "crit", signed
// (HMAC-SHA256, checked here with crypto/hmac) by the key its kid names (the
// current key without kid), unexpired, not issued in the future, from the
// issuer for the audience, and its identity is the one its claims name,
// within the id rules. Every refusal wraps ErrUnauthorized; nothing panics.
func FuzzVerify(f *testing.F) {
	for _, tok := range []string{
		sign(f, jwt.SigningMethodHS256, current.KID, current.Key, claimsWith(nil)),
		sign(f, jwt.SigningMethodHS256, prev.KID, prev.Key, claimsWith(nil)),
		sign(f, jwt.SigningMethodHS256, "", current.Key, claimsWith(nil)),
		sign(f, jwt.SigningMethodHS256, prev.KID, current.Key, claimsWith(nil)),
		sign(f, jwt.SigningMethodHS384, current.KID, current.Key, claimsWith(nil)),
		sign(f, jwt.SigningMethodHS256, current.KID, current.Key, claimsWith(func(c jwt.MapClaims) { c["tenant_id"] = "a#b" })),
		sign(f, jwt.SigningMethodHS256, current.KID, current.Key, claimsWith(func(c jwt.MapClaims) { c["permissions"] = "echo delay" })),
		signWithHeader(f, "crit", []string{"exp"}),
		must(jwt.NewWithClaims(jwt.SigningMethodNone, claimsWith(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)),
		"", "a.b", "a.b.c.d", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.",
	} {
		f.Add(tok)
	}
	v, err := NewVerifier(context.Background(), Config{HMAC: StaticKeys{current, prev}, Issuer: "https://issuer.example", Audience: "streamer"})
	if err != nil {
		f.Fatal(err)
	}
	v.now = func() time.Time { return now }
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Verify(%q) error %v does not wrap ErrUnauthorized", token, err)
			}
			return
		}
		if why := acceptable(token, id); why != "" {
			t.Fatalf("Verify accepted %q as %+v, but %s", token, id, why)
		}
	})
}

// acceptable reads token independently of the JWT library and returns why
// the verifier should not have accepted it as id ("" when it should have).
func acceptable(token string, id Identity) string {
	if len(token) > MaxTokenBytes {
		return "it is longer than MaxTokenBytes"
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "it does not have three segments"
	}
	var header map[string]any
	if err := decodeSegment(parts[0], &header); err != nil {
		return "its header does not decode: " + err.Error()
	}
	if header["alg"] != "HS256" {
		return "its alg is not HS256"
	}
	if _, ok := header["crit"]; ok {
		return "it has a crit header"
	}
	key := current.Key
	if kid, _ := header["kid"].(string); kid == prev.KID {
		key = prev.Key
	} else if kid != "" && kid != current.KID {
		return "its kid names no key"
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return "it is not signed by the key its kid names"
	}
	var c struct {
		Sub      string  `json:"sub"`
		Tenant   string  `json:"tenant_id"`
		Iss      string  `json:"iss"`
		Exp      float64 `json:"exp"`
		Iat      float64 `json:"iat"`
		Audience any     `json:"aud"`
	}
	if err := decodeSegment(parts[1], &c); err != nil {
		return "its claims do not decode: " + err.Error()
	}
	leeway := 30 * time.Second
	switch {
	case c.Sub == "" || c.Sub != id.UserID || len(c.Sub) > MaxSubjectBytes:
		return "its sub is not the identity's user"
	case c.Tenant == "" || c.Tenant != id.TenantID || strings.Contains(c.Tenant, "#") || len(c.Tenant) > MaxTenantIDBytes:
		return "its tenant_id is not a valid tenant or not the identity's"
	case c.Iss != "https://issuer.example":
		return "its issuer is wrong"
	case !hasAudience(c.Audience, "streamer"):
		return "its audience is wrong"
	case float64(now.Add(-leeway).Unix()) > c.Exp:
		return "it expired"
	case float64(now.Add(leeway).Unix()) < c.Iat:
		return "it is issued in the future"
	}
	return ""
}

// decodeSegment decodes a base64url JSON segment into v.
func decodeSegment(seg string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// hasAudience reports whether aud (a string or a list) names want.
func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, e := range a {
			if e == want {
				return true
			}
		}
	}
	return false
}
