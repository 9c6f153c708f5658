package client

import (
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"coffer"
	"coffer/format"
)

// cleanRemote returns the canonical absolute form of a remote path ("/" is the root folder).
// Relative paths are taken from the root; "." and ".." are resolved lexically and never leave it.
func cleanRemote(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("client: remote path %q: contains NUL: %w", p, coffer.ErrInvalid)
	}
	return path.Clean("/" + p), nil
}

// splitRemote returns the elements of a cleaned remote path (nil for the root).
func splitRemote(p string) ([]string, error) {
	c, err := cleanRemote(p)
	if err != nil {
		return nil, err
	}
	if c == "/" {
		return nil, nil
	}
	return strings.Split(c[1:], "/"), nil
}

// joinRemote joins a folder path and a child name.
func joinRemote(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// checkNewName validates a name for a new remote node.
func checkNewName(p, name string) error {
	if err := format.ValidateName(name); err != nil {
		return fmt.Errorf("client: %s: invalid name: %w", p, err)
	}
	return nil
}

// windowsReserved are device names Windows resolves in every folder, with any extension.
var windowsReserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"COM¹": true, "COM²": true, "COM³": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
	"LPT¹": true, "LPT²": true, "LPT³": true,
}

// safeLocalName reports whether a decrypted name is one safe path element on every OS: not
// empty, ".", ".."; no '/', '\\', NUL or control characters; valid UTF-8; not ending in '.' or
// ' '; not a Windows-reserved device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without
// extension, any case). On Windows, the characters <>:"|?* are refused too (':' would name an
// alternate data stream). The error wraps ErrUnsafeName and quotes the name.
func safeLocalName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("name %q %s: %w", name, why, ErrUnsafeName)
	}
	switch {
	case name == "":
		return bad("is empty")
	case name == "." || name == "..":
		return bad("is a relative path element")
	case len(name) > 255:
		return bad("is longer than 255 bytes")
	case !utf8.ValidString(name):
		return bad("is not valid UTF-8")
	}
	for _, r := range name {
		switch {
		case r == '/' || r == '\\':
			return bad("contains a path separator")
		case r == 0:
			return bad("contains NUL")
		case unicode.IsControl(r) || r == utf8.RuneError:
			return bad("contains a control character")
		case runtime.GOOS == "windows" && strings.ContainsRune(`<>:"|?*`, r):
			return bad("contains a character Windows refuses")
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return bad("ends in a dot or a space")
	}
	base := name
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimRight(base, " ")
	if windowsReserved[strings.ToUpper(base)] {
		return bad("is a Windows-reserved device name")
	}
	return nil
}

// safeLocalJoin joins safe relative elements under dir and checks the result stays inside.
func safeLocalJoin(dir string, rel []string) (string, error) {
	for _, e := range rel {
		if err := safeLocalName(e); err != nil {
			return "", err
		}
	}
	if len(rel) == 0 {
		return dir, nil
	}
	r := filepath.Join(rel...)
	if !filepath.IsLocal(r) {
		return "", fmt.Errorf("path %q is not local: %w", r, ErrUnsafeName)
	}
	return filepath.Join(dir, r), nil
}
