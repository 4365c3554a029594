package reliability

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/golang-jwt/jwt/v5"

	"github.com/streamer-dev/streamer/functions/config"
	"github.com/streamer-dev/streamer/local"
	"github.com/streamer-dev/streamer/local/localtest"
)

// JWT settings of the attacked runtimes.
const (
	jwtIssuer   = "https://issuer.reliability.test"
	jwtAudience = "streamer-reliability"
	liveRSAKID  = "rsa-live"
)

// jwtKeys are the keys of the attacked runtimes: HS256 keys through a
// rotation (k0 is rotated out, k1 the previous key, k2 the current one) and
// RSA keys (the live one in the JWKS, a rotated-out one and a stranger's).
type jwtKeys struct {
	hs                   [3][]byte
	rsaLive, rsaOld, rsa *rsa.PrivateKey
}

// newJWTKeys makes fresh keys.
func newJWTKeys(t *testing.T) jwtKeys {
	t.Helper()
	var k jwtKeys
	for i := range k.hs {
		k.hs[i] = []byte(fmt.Sprintf("hs-key-%d-%s", i, strings.TrimSuffix(local.UniquePrefix(), "_")+strings.Repeat("x", 32)))
	}
	for _, p := range []**rsa.PrivateKey{&k.rsaLive, &k.rsaOld, &k.rsa} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		*p = key
	}
	return k
}

// secret is the runtimes' HS256 secret: k2 current, k1 previous.
func (k jwtKeys) secret() string {
	s, _ := json.Marshal(map[string]string{"kid": "k2", "key": string(k.hs[2]), "previous_kid": "k1", "previous_key": string(k.hs[1])})
	return string(s)
}

// jwk is key's public JWK under kid.
func jwk(kid string, key *rsa.PrivateKey) map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}
}

// serveJWKS serves a JWKS of key under kid on 127.0.0.1 and counts fetches.
func serveJWKS(t *testing.T, kid string, key *rsa.PrivateKey, fetches *atomic.Int64) string {
	t.Helper()
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{jwk(kid, key)}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// jwtClaims are valid claims for tenant, edited by edit.
func jwtClaims(tenant string, edit func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "mallory", "tenant_id": tenant, "permissions": []string{"*"}, "iss": jwtIssuer, "aud": jwtAudience,
		"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix()}
	if edit != nil {
		edit(c)
	}
	return c
}

// signed signs claims with method and key, kid in the header when not empty.
func signed(t *testing.T, method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	header := map[string]any{}
	if kid != "" {
		header["kid"] = kid
	}
	return signedWith(t, method, key, c, header)
}

// signedWith signs claims with method and key, adding header's fields to
// the token's header.
func signedWith(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// handmade assembles a token from a header, claims and an HS256 key (no
// signature when key is nil), for headers the JWT library will not write.
func handmade(header map[string]any, c jwt.MapClaims, key []byte) string {
	h, _ := json.Marshal(header)
	b, _ := json.Marshal(c)
	s := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b)
	if key == nil {
		return s + "."
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return s + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// jwtAttack is one token the handshake must refuse.
type jwtAttack struct {
	name  string
	token string
}

// jwtAttacks builds the attack corpus against the keys k, for tenant;
// attacker is a JWKS URL serving the stranger's key as "rsa-attacker".
func jwtAttacks(t *testing.T, k jwtKeys, tenant, attacker string) []jwtAttack {
	t.Helper()
	valid := jwtClaims(tenant, nil)
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims { return jwtClaims(tenant, edit) }
	hs := func(kid string, key []byte, c jwt.MapClaims) string {
		return signed(t, jwt.SigningMethodHS256, kid, key, c)
	}
	pkix, err := x509.MarshalPKIXPublicKey(&k.rsaLive.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pubDER := x509.MarshalPKCS1PublicKey(&k.rsaLive.PublicKey)
	good := hs("k2", k.hs[2], valid)
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	flipped[10] ^= 0x01 // a middle character: every bit of it is signature
	victim, _ := json.Marshal(jwtClaims("victim", nil))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(victim) + "." + parts[2]
	return []jwtAttack{
		{"alg none", handmade(map[string]any{"alg": "none", "typ": "JWT"}, valid, nil)},
		{"alg None", handmade(map[string]any{"alg": "None", "typ": "JWT"}, valid, nil)},
		{"alg NONE", handmade(map[string]any{"alg": "NONE"}, valid, nil)},
		{"alg nOnE with an HS256 signature", handmade(map[string]any{"alg": "nOnE", "kid": "k2"}, valid, k.hs[2])},
		{"alg missing", handmade(map[string]any{"kid": "k2"}, valid, k.hs[2])},
		{"HS256 keyed with the RSA public key PEM, live RSA kid", hs(liveRSAKID, pubPEM, valid)},
		{"HS256 keyed with the RSA public key PEM, no kid", hs("", pubPEM, valid)},
		{"HS256 keyed with the RSA public key DER, live RSA kid", hs(liveRSAKID, pubDER, valid)},
		{"HS512 with the current key", signed(t, jwt.SigningMethodHS512, "k2", k.hs[2], valid)},
		{"kid path traversal", hs("../../../../etc/passwd", k.hs[2], valid)},
		{"kid file URL", hs("file:///dev/null", k.hs[2], valid)},
		{"kid SQL injection", hs("k2' OR '1'='1", k.hs[2], valid)},
		{"kid 4 KB", hs(strings.Repeat("k", 4<<10), k.hs[2], valid)},
		{"RS256 live key, unknown 4 KB kid", signed(t, jwt.SigningMethodRS256, strings.Repeat("r", 4<<10), k.rsaLive, valid)},
		{"kid with NUL", hs("k2\x00", k.hs[2], valid)},
		{"rotated-out key under its own kid", hs("k0", k.hs[0], valid)},
		{"rotated-out key under the previous kid", hs("k1", k.hs[0], valid)},
		{"rotated-out key without kid", hs("", k.hs[0], valid)},
		{"previous key without kid", hs("", k.hs[1], valid)},
		{"current key under the previous kid", hs("k1", k.hs[2], valid)},
		{"RS256 rotated-out RSA key", signed(t, jwt.SigningMethodRS256, "rsa-old", k.rsaOld, valid)},
		{"RS256 stranger's key under the live kid", signed(t, jwt.SigningMethodRS256, liveRSAKID, k.rsa, valid)},
		{"RS256 live key, kid path traversal", signed(t, jwt.SigningMethodRS256, "../"+liveRSAKID, k.rsaLive, valid)},
		{"PS256 live key", signed(t, jwt.SigningMethodPS256, liveRSAKID, k.rsaLive, valid)},
		{"RS256 stranger's key named by a jku header", signedWith(t, jwt.SigningMethodRS256, k.rsa, valid, map[string]any{"kid": "rsa-attacker", "jku": attacker})},
		{"RS256 stranger's key named by an x5u header", signedWith(t, jwt.SigningMethodRS256, k.rsa, valid, map[string]any{"kid": "rsa-attacker", "x5u": attacker})},
		{"RS256 stranger's key embedded as a jwk header", signedWith(t, jwt.SigningMethodRS256, k.rsa, valid, map[string]any{"jwk": jwk("rsa-attacker", k.rsa)})},
		{"RS256 stranger's jwk header under the live kid", signedWith(t, jwt.SigningMethodRS256, k.rsa, valid, map[string]any{"kid": liveRSAKID, "jwk": jwk(liveRSAKID, k.rsa)})},
		{"expired", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))},
		{"expired in 1970", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["exp"] = 1 }))},
		{"no exp", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"exp not a number", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["exp"] = "never" }))},
		{"nbf in the future", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }))},
		{"iat in the future", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }))},
		{"no sub", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { delete(c, "sub") }))},
		{"no tenant_id", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { delete(c, "tenant_id") }))},
		{"empty tenant_id", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["tenant_id"] = "" }))},
		{"tenant_id with #", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["tenant_id"] = "victim#" + tenant }))},
		{"tenant_id a number", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["tenant_id"] = 7 }))},
		{"tenant_id 129 bytes", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["tenant_id"] = strings.Repeat("t", 129) }))},
		{"permissions an object", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["permissions"] = map[string]bool{"*": true} }))},
		{"wrong issuer", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }))},
		{"no issuer", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { delete(c, "iss") }))},
		{"wrong audience", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["aud"] = "other-service" }))},
		{"no audience", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { delete(c, "aud") }))},
		{"crit header", handmade(map[string]any{"alg": "HS256", "kid": "k2", "crit": []string{"exp"}}, valid, k.hs[2])},
		{"100 KB token, validly signed", hs("k2", k.hs[2], with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("p", 100<<10) }))},
		{"100 KB of garbage", strings.Repeat("A", 100<<10)},
		{"garbage", "not-a-token"},
		{"empty", ""},
		{"two parts", parts[0] + "." + parts[1]},
		{"four parts", good + "." + parts[2]},
		{"five parts (JWE compact form)", good + "." + parts[1] + "." + parts[2]},
		{"empty parts", ".."},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"wrong signature", parts[0] + "." + parts[1] + "." + string(flipped)},
		{"tenant swapped under a valid signature", tampered},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{alg:HS256")) + "." + parts[1] + "." + parts[2]},
		{"JWS JSON serialization", `{"payload":"` + parts[1] + `","signatures":[{"protected":"` + parts[0] + `","signature":"` + parts[2] + `"}]}`},
	}
}

// jwtRuntime is one configuration under attack, with the tokens it accepts.
type jwtRuntime struct {
	name  string
	env   map[string]string
	valid func(tenant string) map[string]string // positive controls by name
}

// TestJWTAttacks dials the WebSocket endpoint with every token of the attack
// corpus — in the query string and in the Authorization header — against a
// runtime with rotated HS256 keys, a JWKS, an issuer and an audience, and a
// runtime with the JWKS alone. Each is refused with 401 at the handshake and
// leaves the connections table (connection items and tenant counters) exactly
// as it was; each runtime's valid tokens (positive controls) connect.
func TestJWTAttacks(t *testing.T) {
	keys := newJWTKeys(t)
	var fetches, attackerFetches atomic.Int64
	jwks := serveJWKS(t, liveRSAKID, keys.rsaLive, &fetches)
	attacker := serveJWKS(t, "rsa-attacker", keys.rsa, &attackerFetches)
	rsaValid := func(tenant string) string {
		return signed(t, jwt.SigningMethodRS256, liveRSAKID, keys.rsaLive, jwtClaims(tenant, nil))
	}
	runtimes := []jwtRuntime{
		{name: "HS256 rotation + JWKS + issuer + audience",
			env: map[string]string{config.EnvJWTSecret: keys.secret(), config.EnvJWKSURL: jwks, config.EnvJWTIssuer: jwtIssuer, config.EnvJWTAudience: jwtAudience},
			valid: func(tenant string) map[string]string {
				return map[string]string{
					"HS256 current key":  signed(t, jwt.SigningMethodHS256, "k2", keys.hs[2], jwtClaims(tenant, nil)),
					"HS256 previous key": signed(t, jwt.SigningMethodHS256, "k1", keys.hs[1], jwtClaims(tenant, nil)),
					"RS256 JWKS key":     rsaValid(tenant),
				}
			}},
		{name: "JWKS only + issuer + audience",
			env: map[string]string{config.EnvJWTSecret: "", config.EnvJWKSURL: jwks, config.EnvJWTIssuer: jwtIssuer, config.EnvJWTAudience: jwtAudience},
			valid: func(tenant string) map[string]string {
				return map[string]string{"RS256 JWKS key": rsaValid(tenant)}
			}},
	}
	o := outcome{Group: groupInput, Scenario: "JWT attacks at the handshake"}
	attacks, controls := 0, 0
	for _, cfg := range runtimes {
		t.Run(cfg.name, func(t *testing.T) {
			rt := localtest.Start(t, local.Options{Env: cfg.env})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			tenant := localtest.Tenant("jwt")
			for name, tok := range cfg.valid(tenant) {
				for _, d := range deliveries {
					controls++
					if hs := dialWith(rt, d, tok); hs.status != http.StatusSwitchingProtocols {
						o.Errors++
						t.Errorf("positive control %s (%s) was refused with %d", name, d.name, hs.status)
					}
				}
			}
			// The controls' $disconnect events run after the close.
			settledFootprint(t, ctx, rt, tenant, footprint{Connections: []string{}})
			before := connectionsTable(t, ctx, rt)
			for _, a := range jwtAttacks(t, keys, tenant, attacker) {
				for _, d := range deliveries {
					attacks++
					hs := dialWith(rt, d, a.token)
					if hs.status != http.StatusUnauthorized {
						o.Errors++
						t.Errorf("%s (%s): handshake answered %d, want 401", a.name, d.name, hs.status)
					}
					for _, word := range refusalLeaks {
						if strings.Contains(strings.ToLower(hs.body), word) {
							o.Errors++
							t.Errorf("%s (%s): the refusal says %q", a.name, d.name, hs.body)
						}
					}
					if after := connectionsTable(t, ctx, rt); !reflect.DeepEqual(after, before) {
						o.Errors++
						t.Errorf("%s (%s): the connections table changed:\n%v\nto\n%v", a.name, d.name, before, after)
						before = after
					}
				}
			}
		})
	}
	if n := attackerFetches.Load(); n > 0 {
		o.Errors++
		t.Errorf("the attacker's JWKS named in token headers was fetched %d times", n)
	}
	o.Size = fmt.Sprintf("%d refused handshakes, %d positive controls, 2 runtime configurations", attacks, controls)
	o.Notes = fmt.Sprintf("every attack 401 (no reason given) in the query string and the Authorization header; connections table unchanged after each; the JWKS was fetched %d times, the attacker's (jku, x5u) never", fetches.Load())
	record(t, o)
}

// delivery is how a token reaches $connect.
type delivery struct {
	name  string
	query func(token string) string
	// header is the handshake's headers for token.
	header func(token string) http.Header
}

// deliveries are the two ways a client presents a token.
var deliveries = []delivery{
	{name: "query string", query: func(tok string) string { return "?token=" + url.QueryEscape(tok) }, header: func(string) http.Header { return nil }},
	{name: "Authorization header", query: func(string) string { return "" }, header: func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }},
}

// dialWith returns how the handshake with token delivered by d was answered.
func dialWith(rt *local.Runtime, d delivery, token string) handshake {
	w, hs, _ := tryDial(rt, d.query(token), d.header(token))
	if w != nil {
		_ = w.ws.CloseNow()
	}
	return hs
}

// refusalLeaks are words of the verifier's reasons, which are for logs only:
// a refused handshake must not say why.
var refusalLeaks = []string{"token", "signature", "kid", "expired", "claim", "jwt", "key", "tenant", "issuer", "audience"}

// connectionsTable reads every item of rt's connections table (connections
// and tenant counters), keyed by ConnectionID, as text.
func connectionsTable(t *testing.T, ctx context.Context, rt *local.Runtime) map[string]string {
	t.Helper()
	out := map[string]string{}
	p := dynamodb.NewScanPaginator(rt.DynamoDB(), &dynamodb.ScanInput{TableName: aws.String(rt.Tables().Connections), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("scan connections: %v", err)
		}
		for _, item := range page.Items {
			id, _ := item["ConnectionID"].(*types.AttributeValueMemberS)
			if id == nil {
				t.Fatalf("connection item without ConnectionID: %v", item)
			}
			var v map[string]any
			if err := attributevalue.UnmarshalMap(item, &v); err != nil {
				t.Fatal(err)
			}
			out[id.Value] = fmt.Sprint(v)
		}
	}
	return out
}
