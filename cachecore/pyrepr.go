package cachecore

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PyRepr is Python's repr() of a str.
func PyRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Python would have failed to decode; show the byte.
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		i += size
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyDictOfSets renders dict(refs_by_hash) as Python prints it. Python's set
// order is hash-randomised; we sort keys and members so the text is stable.
func pyDictOfSets(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		members := append([]string(nil), m[k]...)
		sort.Strings(members)
		reprs := make([]string, len(members))
		for i, v := range members {
			reprs[i] = PyRepr(v)
		}
		parts = append(parts, PyRepr(k)+": {"+strings.Join(reprs, ", ")+"}")
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
