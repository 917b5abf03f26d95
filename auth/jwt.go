package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTOptions configure a JWT verifier. Exactly one of Secret and PublicKey
// must be set.
type JWTOptions struct {
	// Secret verifies HS256 tokens.
	Secret []byte
	// PublicKey verifies RS256 (an RSA key) or ES256 (an ECDSA P-256 key)
	// tokens; see ParsePublicKey.
	PublicKey crypto.PublicKey
	// Audience and Issuer, when set, must match the token's aud and iss.
	Audience string
	Issuer   string
	// Leeway tolerates clock skew on exp and nbf. Default 0.
	Leeway time.Duration
	// RequireExp refuses tokens without an exp claim. By default a token
	// without exp is valid until its key changes.
	RequireExp bool
}

// JWT verifies JSON Web Tokens: signature, exp, nbf, and optionally aud and
// iss. Claim sub is the user; the optional claim channels lists channel
// patterns. It is safe for concurrent use.
type JWT struct {
	key    any
	parser *jwt.Parser
}

// claims are the token claims Herald reads.
type claims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels,omitempty"`
}

// NewJWT returns a verifier for opts.
func NewJWT(opts JWTOptions) (*JWT, error) {
	parserOpts := []jwt.ParserOption{jwt.WithLeeway(opts.Leeway)}
	switch key := opts.PublicKey.(type) {
	case nil:
		if len(opts.Secret) == 0 {
			return nil, errors.New("herald: JWT needs a secret or a public key")
		}
		parserOpts = append(parserOpts, jwt.WithValidMethods([]string{"HS256"}))
	case *rsa.PublicKey:
		parserOpts = append(parserOpts, jwt.WithValidMethods([]string{"RS256"}))
	case *ecdsa.PublicKey:
		parserOpts = append(parserOpts, jwt.WithValidMethods([]string{"ES256"}))
	default:
		return nil, fmt.Errorf("herald: unsupported public key type %T", key)
	}
	if opts.PublicKey != nil && len(opts.Secret) != 0 {
		return nil, errors.New("herald: JWT takes a secret or a public key, not both")
	}
	if opts.Audience != "" {
		parserOpts = append(parserOpts, jwt.WithAudience(opts.Audience))
	}
	if opts.Issuer != "" {
		parserOpts = append(parserOpts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.RequireExp {
		parserOpts = append(parserOpts, jwt.WithExpirationRequired())
	}
	v := &JWT{key: opts.PublicKey, parser: jwt.NewParser(parserOpts...)}
	if opts.PublicKey == nil {
		v.key = opts.Secret
	}
	return v, nil
}

// Verify checks token and returns the identity it carries.
func (v *JWT) Verify(token string) (Identity, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrInvalidToken)
	}
	id := Identity{User: c.Subject, Channels: c.Channels}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time
	}
	return id, nil
}

// ParsePublicKey reads an RSA or ECDSA public key from PEM (a PUBLIC KEY or
// RSA PUBLIC KEY block, or a CERTIFICATE's key).
func ParsePublicKey(pemData []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("herald: no PEM block in public key file")
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(pemData); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(pemData); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("herald: %s block is not an RSA or ECDSA public key", block.Type)
}

// SignHS256 returns an HS256 token for user, valid for ttl, limited to
// channels when not nil. It is meant for development and tests.
func SignHS256(secret []byte, user string, channels []string, ttl time.Duration) (string, error) {
	now := time.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Channels: channels,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
