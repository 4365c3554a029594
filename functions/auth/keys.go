package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/streamer-dev/streamer/functions/config"
)

// secret is the JSON form of the HS256 keys in Secrets Manager (and optionally
// in STREAMER_JWT_SECRET).
type secret struct {
	KID         string `json:"kid"`
	Key         string `json:"key"`
	PreviousKID string `json:"previous_kid"`
	PreviousKey string `json:"previous_key"`
}

// minKeyBytes is the shortest HS256 key accepted (RFC 7518 §3.2: at least the
// hash size).
const minKeyBytes = 32

// ParseSecret reads HS256 keys from a secret string: the JSON object
// {"kid": "...", "key": "...", "previous_kid": "...", "previous_key": "..."}
// (the previous pair is optional, for rotation), or a bare key without kid.
func ParseSecret(s string) ([]HMACKey, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		if len(s) < minKeyBytes {
			return nil, fmt.Errorf("auth: HS256 key has %d bytes, fewer than %d", len(s), minKeyBytes)
		}
		return []HMACKey{{Key: []byte(s)}}, nil
	}
	var sec secret
	if err := json.Unmarshal([]byte(s), &sec); err != nil {
		return nil, errors.New("auth: secret is not the JSON object {kid, key, previous_kid, previous_key}")
	}
	if len(sec.Key) < minKeyBytes {
		return nil, fmt.Errorf("auth: secret key has %d bytes, fewer than %d", len(sec.Key), minKeyBytes)
	}
	keys := []HMACKey{{KID: sec.KID, Key: []byte(sec.Key)}}
	if sec.PreviousKey != "" {
		if sec.PreviousKID == "" || sec.PreviousKID == sec.KID {
			return nil, errors.New("auth: previous_key needs its own previous_kid")
		}
		keys = append(keys, HMACKey{KID: sec.PreviousKID, Key: []byte(sec.PreviousKey)})
	}
	return keys, nil
}

// SecretGetter reads a secret (*secretsmanager.Client).
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

type secretsManagerKeys struct {
	client SecretGetter
	arn    string
}

// SecretsManagerKeys reads HS256 keys from the secret arn (see ParseSecret).
// Wrap it with Cached.
func SecretsManagerKeys(client SecretGetter, arn string) KeySource {
	return secretsManagerKeys{client: client, arn: arn}
}

func (s secretsManagerKeys) Keys(ctx context.Context) ([]HMACKey, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.arn)})
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	return ParseSecret(aws.ToString(out.SecretString))
}

// SecretRefresh is how often keys from Secrets Manager are read again.
const SecretRefresh = 5 * time.Minute

// ConfigFromEnv builds a Config from STREAMER_JWT_SECRET_ARN (read through
// secrets, cached for SecretRefresh) or STREAMER_JWT_SECRET, STREAMER_JWKS_URL,
// STREAMER_JWT_ISSUER and STREAMER_JWT_AUDIENCE. secrets may be nil when no
// secret ARN is set.
func ConfigFromEnv(getenv config.Getenv, secrets SecretGetter) (Config, error) {
	cfg := Config{
		JWKSURL:  getenv(config.EnvJWKSURL),
		Issuer:   getenv(config.EnvJWTIssuer),
		Audience: getenv(config.EnvJWTAudience),
	}
	switch arn, raw := getenv(config.EnvJWTSecretARN), getenv(config.EnvJWTSecret); {
	case arn != "" && raw != "":
		return cfg, fmt.Errorf("auth: set %s or %s, not both", config.EnvJWTSecretARN, config.EnvJWTSecret)
	case arn != "":
		if secrets == nil {
			return cfg, fmt.Errorf("auth: %s is set but no Secrets Manager client was given", config.EnvJWTSecretARN)
		}
		cfg.HMAC = Cached(SecretsManagerKeys(secrets, arn), SecretRefresh)
	case raw != "":
		keys, err := ParseSecret(raw)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", config.EnvJWTSecret, err)
		}
		cfg.HMAC = StaticKeys(keys)
	}
	if cfg.HMAC == nil && cfg.JWKSURL == "" {
		return cfg, fmt.Errorf("auth: set %s, %s or %s", config.EnvJWTSecretARN, config.EnvJWTSecret, config.EnvJWKSURL)
	}
	return cfg, nil
}

// TokenFromRequest returns the token of a $connect request: the "token" query
// parameter (browsers cannot set headers on a WebSocket) or else the bearer
// token of the Authorization header.
func TokenFromRequest(query, headers map[string]string) string {
	if t := query["token"]; t != "" {
		return t
	}
	for name, v := range headers {
		if strings.EqualFold(name, "Authorization") {
			if t, ok := strings.CutPrefix(v, "Bearer "); ok {
				return strings.TrimSpace(t)
			}
			if t, ok := strings.CutPrefix(v, "bearer "); ok {
				return strings.TrimSpace(t)
			}
		}
	}
	return ""
}
