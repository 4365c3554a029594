package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issue signs an HS256 token for identity that expires after ttl, with key's
// kid in the header: what the local runtime's token command and tests hand to
// clients. Production tokens come from the identity provider.
func Issue(key HMACKey, id Identity, ttl time.Duration) (string, error) {
	if id.UserID == "" || id.TenantID == "" {
		return "", errors.New("auth: issue: user and tenant are required")
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   id.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		TenantID:    id.TenantID,
		Permissions: id.Permissions,
	})
	if key.KID != "" {
		tok.Header["kid"] = key.KID
	}
	return tok.SignedString(key.Key)
}
