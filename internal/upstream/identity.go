package upstream

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/mandate-dev/mandate/internal/config"
	"github.com/mandate-dev/mandate/internal/directory"
)

// Identity is who signed in, as the provider says and the configuration's
// rules map it.
type Identity struct {
	// Issuer is the provider's issuer.
	Issuer string
	// Subject is the provider's sub for the person: stable at the
	// provider, and the key to Recheck.
	Subject string
	// UserID is the person's Mandate id, made by the user_id template.
	UserID string
	// Permissions are the union of the grants of the permission rules
	// that match, sorted; empty when none does.
	Permissions []string
	// Roles are the union of the grants of the role rules that match,
	// sorted.
	Roles []string
	// Name is the name claim, or preferred_username; may be empty. Text
	// from the provider: escape it where it is shown.
	Name string
	// Email is the email claim when email_verified is true, else empty.
	Email string
	// RefreshToken is the provider's refresh token, when it issued one
	// (the scopes hold offline_access): a secret, to be kept encrypted for
	// Recheck and never logged. String and GoString leave it out.
	RefreshToken string
}

// String never prints the refresh token.
func (id Identity) String() string {
	return fmt.Sprintf("{Issuer:%s Subject:%s UserID:%s Permissions:%v Roles:%v Name:%q Email:%s RefreshToken:%s}",
		id.Issuer, id.Subject, id.UserID, id.Permissions, id.Roles, id.Name, id.Email, redacted(id.RefreshToken))
}

// GoString never prints the refresh token.
func (id Identity) GoString() string { return "upstream.Identity" + id.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "[redacted]"
}

// identity maps the claims of tokens (the verified ID token's, then
// userinfo's for those it lacks) to an Identity. subject is the person's
// sub, which userinfo must repeat.
func (p *Provider) identity(ctx context.Context, tokens *oidc.Tokens[*oidc.IDTokenClaims], subject string) (Identity, error) {
	claims := map[string]any{}
	for k, v := range tokens.IDTokenClaims.Claims {
		claims[k] = v
	}
	if p.needsUserinfo(claims) {
		if tokens.Token == nil || tokens.AccessToken == "" {
			return Identity{}, fmt.Errorf("%w: %s: claims missing and no access token for userinfo", ErrExchange, p.issuer)
		}
		info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, subject, p.rp)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %s: userinfo: %s", ErrExchange, p.issuer, describe(err))
		}
		for k, v := range info.Claims {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	if s, _ := claims["sub"].(string); s != subject || subject == "" {
		return Identity{}, fmt.Errorf("%w: %s: no subject", ErrExchange, p.issuer)
	}
	userID, err := p.makeUserID(claims)
	if err != nil {
		return Identity{}, err
	}
	id := Identity{
		Issuer:      p.issuer,
		Subject:     subject,
		UserID:      userID,
		Permissions: grants(p.perms, claims),
		Roles:       grants(p.roles, claims),
	}
	id.Name, _ = claims["name"].(string)
	if id.Name == "" {
		id.Name, _ = claims["preferred_username"].(string)
	}
	if verified(claims) {
		id.Email, _ = claims["email"].(string)
	}
	return id, nil
}

// needsUserinfo reports whether a claim the template or a rule reads is
// absent from claims.
func (p *Provider) needsUserinfo(claims map[string]any) bool {
	absent := func(name string) bool { _, ok := claims[name]; return !ok }
	for _, part := range p.userID {
		if part.Claim != "" && absent(part.Claim) {
			return true
		}
		if part.Claim == "email" && absent("email_verified") {
			return true
		}
	}
	for _, r := range slices.Concat(p.perms, p.roles) {
		if absent(r.When.Claim) {
			return true
		}
	}
	return false
}

// makeUserID fills the template. Each claim must be a non-empty string;
// {email} only counts when email_verified is true, since an unverified
// address is anyone's to claim. The id made must be a valid Mandate id.
func (p *Provider) makeUserID(claims map[string]any) (string, error) {
	var b strings.Builder
	for _, part := range p.userID {
		if part.Claim == "" {
			b.WriteString(part.Text)
			continue
		}
		v, ok := claims[part.Claim].(string)
		switch {
		case !ok || v == "":
			return "", fmt.Errorf("%w: %s: claim %s is absent or not a string", ErrClaims, p.issuer, part.Claim)
		case part.Claim == "email" && !verified(claims):
			return "", fmt.Errorf("%w: %s: email is not verified", ErrClaims, p.issuer)
		}
		b.WriteString(v)
	}
	id := b.String()
	if err := directory.CheckID(id); err != nil {
		return "", fmt.Errorf("%w: %s: the id made from the claims %s %v", ErrClaims, p.issuer, shown(id), err)
	}
	return id, nil
}

func verified(claims map[string]any) bool {
	v, _ := claims["email_verified"].(bool)
	return v
}

// grants returns the union of the grants of the rules whose condition the
// claims meet, sorted. A rule on the email claim matches only when
// email_verified is true.
func grants(rules []config.ClaimRule, claims map[string]any) []string {
	var out []string
	for _, r := range rules {
		// An unverified address is anyone's to claim.
		if r.When.Claim == "email" && !verified(claims) {
			continue
		}
		if r.When.Matches(claims) {
			out = append(out, r.Grant...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
