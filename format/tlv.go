package format

import (
	"encoding/binary"
	"fmt"
)

// A TLV list is a sequence of tag u8 | length u32 | value, tags strictly increasing (so each
// appears at most once). Readers reject tags they do not know.

type tlv struct {
	tag   uint8
	value []byte
}

// appendTLV appends one TLV item to dst.
func appendTLV(dst []byte, tag uint8, value []byte) []byte {
	dst = append(dst, tag)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// parseTLV splits b into items, checking that tags are strictly increasing and each tag is at
// most maxTag and non-zero. Values alias b.
func parseTLV(b []byte, object string, maxTag uint8) ([]tlv, error) {
	var items []tlv
	last := -1
	for len(b) > 0 {
		if len(b) < 5 {
			return nil, corruptErr(object, "tlv", fmt.Sprintf("truncated item header (%d bytes)", len(b)))
		}
		tag := b[0]
		n := binary.BigEndian.Uint32(b[1:5])
		b = b[5:]
		if tag == 0 || tag > maxTag {
			return nil, corruptErr(object, fmt.Sprintf("tlv tag %d", tag), "unknown tag")
		}
		if int(tag) <= last {
			return nil, corruptErr(object, fmt.Sprintf("tlv tag %d", tag), "tags not strictly increasing")
		}
		if uint64(n) > uint64(len(b)) {
			return nil, corruptErr(object, fmt.Sprintf("tlv tag %d", tag), fmt.Sprintf("length %d exceeds remaining %d bytes", n, len(b)))
		}
		items = append(items, tlv{tag: tag, value: b[:n]})
		b = b[n:]
		last = int(tag)
	}
	return items, nil
}

// wantLen checks that the item's value is n bytes long (a parse failure of field otherwise).
func (it tlv) wantLen(object string, n int, field string) error {
	if len(it.value) != n {
		return corruptErr(object, field, fmt.Sprintf("length %d, want %d", len(it.value), n))
	}
	return nil
}
