// Package auth verifies the JWT a client presents on $connect and turns it into
// the identity stored with the connection: user, tenant and permissions.
//
// Two kinds of keys are supported, alone or together: HS256 shared keys
// (Secrets Manager, or an environment variable for the local runtime) with
// rotation — the current and the previous key are accepted, chosen by the
// token's kid — and RS256/ES256 public keys from a JWKS URL (Cognito, Auth0).
// A token's algorithm must match the kind of key that verifies it, so an
// HS256 token is never checked against a public key.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Claim size limits: ids become parts of DynamoDB keys.
const (
	MaxTenantIDBytes = 128
	MaxSubjectBytes  = 256
)

// MaxTokenBytes caps a token's length. Identity providers' tokens are a few
// KB; a larger one is refused before it is decoded, so an oversized token
// costs no parsing or signature check.
const MaxTokenBytes = 8 << 10

// ErrUnauthorized wraps every reason a token is refused.
var ErrUnauthorized = errors.New("unauthorized")

// Identity is who a verified token speaks for.
type Identity struct {
	UserID   string
	TenantID string
	// Permissions lists the actions the user may run; "*" allows all.
	Permissions []string
	// ExpiresAt is the token's expiry.
	ExpiresAt time.Time
}

// Allows reports whether the identity may run action.
func (id Identity) Allows(action string) bool {
	return slices.Contains(id.Permissions, "*") || slices.Contains(id.Permissions, action)
}

// HMACKey is one HS256 key and its key id.
type HMACKey struct {
	KID string
	Key []byte
}

// KeySource returns the current HS256 keys: the current key first, then the
// previous one during a rotation.
type KeySource interface {
	Keys(ctx context.Context) ([]HMACKey, error)
}

// StaticKeys is a KeySource with fixed keys.
type StaticKeys []HMACKey

// Keys returns the keys.
func (s StaticKeys) Keys(context.Context) ([]HMACKey, error) { return s, nil }

// Config configures a Verifier. At least one of HMAC and JWKSURL must be set.
type Config struct {
	// HMAC supplies HS256 keys.
	HMAC KeySource
	// JWKSURL is the JWKS document of an RS256/ES256 issuer.
	JWKSURL string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be among the token's aud.
	Audience string
	// Leeway tolerates clock skew in exp and nbf checks. Default: 30 s.
	Leeway time.Duration
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	hmac     KeySource
	jwks     keyfunc.Keyfunc
	issuer   string
	audience string
	leeway   time.Duration
	methods  []string
	now      func() time.Time
}

// claims is the token body Streamer reads.
type claims struct {
	jwt.RegisteredClaims
	TenantID    string      `json:"tenant_id"`
	Permissions permissions `json:"permissions"`
}

// permissions accepts a JSON array of strings or one space-separated string
// (the OAuth "scope" style).
type permissions []string

func (p *permissions) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = strings.Fields(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("permissions must be a list of strings or a space-separated string")
	}
	*p = list
	return nil
}

// NewVerifier returns a verifier for cfg. With a JWKS URL it starts fetching
// the key set in the background; ctx ends that refresh.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{hmac: cfg.HMAC, issuer: cfg.Issuer, audience: cfg.Audience, leeway: cfg.Leeway, now: time.Now}
	if v.leeway == 0 {
		v.leeway = 30 * time.Second
	}
	if cfg.HMAC != nil {
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		kf, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
		if err != nil {
			return nil, fmt.Errorf("auth: jwks %s: %w", cfg.JWKSURL, err)
		}
		v.jwks = kf
		v.methods = append(v.methods, "RS256", "ES256")
	}
	if len(v.methods) == 0 {
		return nil, errors.New("auth: no keys configured (set an HS256 secret or a JWKS URL)")
	}
	return v, nil
}

// Verify checks the token's signature, algorithm, expiry (required), nbf,
// iat (not in the future), issuer and audience, and that it names a user
// (sub) and a tenant (tenant_id). A token with a "crit" header is refused:
// Streamer understands no JWS extension (RFC 7515 §4.1.11). Every refusal
// wraps ErrUnauthorized; its text is for logs only.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, fmt.Errorf("%w: no token", ErrUnauthorized)
	}
	if len(token) > MaxTokenBytes {
		return Identity{}, fmt.Errorf("%w: token is %d bytes, more than %d", ErrUnauthorized, len(token), MaxTokenBytes)
	}
	var hmacKeys []HMACKey
	if v.hmac != nil {
		keys, err := v.hmac.Keys(ctx)
		if err != nil {
			return Identity{}, fmt.Errorf("auth: load keys: %w", err) // an outage, not the client's fault
		}
		hmacKeys = keys
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// The JWT library ignores crit; a recipient must refuse extensions
			// it does not understand, and Streamer understands none.
			return nil, errors.New("crit header: no extension is supported")
		}
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			return hmacKey(hmacKeys, t)
		case *jwt.SigningMethodRSA, *jwt.SigningMethodECDSA:
			if v.jwks == nil {
				return nil, errors.New("no JWKS configured")
			}
			return v.jwks.KeyfuncCtx(ctx)(t)
		}
		return nil, fmt.Errorf("unexpected algorithm %v", t.Header["alg"])
	}, opts...)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	switch {
	case c.Subject == "":
		return Identity{}, fmt.Errorf("%w: token has no sub", ErrUnauthorized)
	case c.TenantID == "":
		return Identity{}, fmt.Errorf("%w: token has no tenant_id", ErrUnauthorized)
	case strings.Contains(c.TenantID, "#"):
		return Identity{}, fmt.Errorf("%w: tenant_id contains '#'", ErrUnauthorized)
	case len(c.TenantID) > MaxTenantIDBytes || len(c.Subject) > MaxSubjectBytes:
		return Identity{}, fmt.Errorf("%w: tenant_id or sub too long", ErrUnauthorized)
	}
	id := Identity{UserID: c.Subject, TenantID: c.TenantID, Permissions: normalize(c.Permissions)}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time.UTC()
	}
	return id, nil
}

// normalize sorts the permissions and drops empty and repeated entries (they
// are stored as a DynamoDB string set, which allows neither).
func normalize(p []string) []string {
	out := slices.DeleteFunc(slices.Clone(p), func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// hmacKey picks the key named by the token's kid; a token without kid uses the
// current key, and a single key without kid verifies any token.
func hmacKey(keys []HMACKey, t *jwt.Token) (any, error) {
	if len(keys) == 0 {
		return nil, errors.New("no HS256 key configured")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" || (len(keys) == 1 && keys[0].KID == "") {
		return keys[0].Key, nil
	}
	for _, k := range keys {
		if k.KID == kid {
			return k.Key, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// cachedKeys refreshes a KeySource at most once per ttl.
type cachedKeys struct {
	src KeySource
	ttl time.Duration

	mu      sync.Mutex
	keys    []HMACKey
	fetched time.Time
}

// Cached returns a KeySource that asks src again only after ttl, so a rotated
// secret is picked up without a cold start. When a refresh fails the last keys
// stay in use.
func Cached(src KeySource, ttl time.Duration) KeySource {
	return &cachedKeys{src: src, ttl: ttl}
}

func (c *cachedKeys) Keys(ctx context.Context) ([]HMACKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != nil && time.Since(c.fetched) < c.ttl {
		return c.keys, nil
	}
	keys, err := c.src.Keys(ctx)
	if err != nil {
		if c.keys != nil {
			return c.keys, nil
		}
		return nil, err
	}
	c.keys, c.fetched = keys, time.Now()
	return keys, nil
}
