package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
)

// SecretFile is a file the configuration names that holds a secret.
type SecretFile struct {
	// Field is the key that names the file ("" for the configuration file
	// itself).
	Field string
	// Path is the file, as the configuration gives it.
	Path string
	// Holds says what secret it holds, for the warning.
	Holds string
}

// SecretFiles returns the files the configuration names that hold secrets:
// the configuration file itself (Source) when a secret is written in it
// (admin.token, an agent's secret, a password in store); admin.token_file,
// every agent's secret_file, every login's client_secret_file and
// store_password_file; and the SQLite database
// with its write-ahead log, which hold the private signing keys and the
// client secrets' hashes. Files that do not exist are listed too.
func (c *Config) SecretFiles() []SecretFile {
	var out []SecretFile
	if inline := c.inlineSecrets(); c.Source != "" && len(inline) > 0 {
		out = append(out, SecretFile{Path: c.Source, Holds: "secrets written in it (" + strings.Join(inline, ", ") + ")"})
	}
	if c.Admin.TokenFile != "" {
		out = append(out, SecretFile{Field: "admin.token_file", Path: c.Admin.TokenFile, Holds: "the admin token"})
	}
	for i, a := range c.Agents {
		if a.SecretFile != "" {
			out = append(out, SecretFile{Field: fmt.Sprintf("agents[%d].secret_file", i), Path: a.SecretFile, Holds: "the client secret of " + a.ID})
		}
	}
	for i, idp := range c.IdentityProviders {
		if idp.Login != nil && idp.Login.ClientSecretFile != "" {
			out = append(out, SecretFile{Field: fmt.Sprintf("identity_providers[%d].login.client_secret_file", i), Path: idp.Login.ClientSecretFile,
				Holds: "the client secret at " + idp.Issuer})
		}
	}
	if c.StorePasswordFile != "" {
		out = append(out, SecretFile{Field: "store_password_file", Path: c.StorePasswordFile, Holds: "the database password"})
	}
	if db := c.SQLitePath(); db != "" {
		field := "data_dir"
		if c.Store != "" {
			field = "store"
		}
		out = append(out,
			SecretFile{Field: field, Path: db, Holds: "the private signing keys"},
			SecretFile{Field: field, Path: db + "-wal", Holds: "the private signing keys (the database's write-ahead log)"})
	}
	return out
}

// inlineSecrets names the keys that hold a secret in the file itself.
func (c *Config) inlineSecrets() []string {
	var keys []string
	if c.Admin.Token != "" {
		keys = append(keys, "admin.token")
	}
	for i, a := range c.Agents {
		if a.Secret != "" {
			keys = append(keys, fmt.Sprintf("agents[%d].secret", i))
		}
	}
	if u, err := url.Parse(c.Store); err == nil && c.IsPostgres() && u.User != nil {
		if _, ok := u.User.Password(); ok {
			keys = append(keys, "store")
		}
	}
	return keys
}

// ReadableSecrets returns a warning (a *FieldError) for each of SecretFiles
// that exists and that group or others may read or write (mode & 0o077),
// naming the file, its mode and the fix (chmod 600). Files that are absent
// or cannot be examined draw none: Validate reports the secret files it
// cannot read. On Windows, which has no such modes, it returns nil.
func (c *Config) ReadableSecrets() []error {
	if runtime.GOOS == "windows" {
		return nil
	}
	p := &problems{file: c.Source}
	for _, f := range c.SecretFiles() {
		fi, err := os.Stat(f.Path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				p.add(f.Field, "cannot examine %s: %v", shellQuote(f.Path), err)
			}
			continue
		}
		perm := fi.Mode().Perm()
		if perm&0o077 == 0 {
			continue
		}
		what := shellQuote(f.Path)
		if f.Field == "" {
			what = "the file" // the error starts with its name
		}
		p.add(f.Field, "%s is readable by group or others (mode %04o) and holds %s; make it private: chmod 600 %s",
			what, perm, f.Holds, shellQuote(f.Path))
	}
	return p.errs
}

// shellQuote returns path as a shell word: as it is when it holds only
// characters no shell treats specially, else single-quoted, with control
// characters escaped so that a warning never carries them raw.
func shellQuote(path string) string {
	plain := path != ""
	for _, r := range path {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@%=", r)) {
			plain = false
			break
		}
	}
	if plain {
		return path
	}
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range path {
		switch {
		case r == '\'':
			b.WriteString(`'\''`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, `'$'\x%02x''`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
