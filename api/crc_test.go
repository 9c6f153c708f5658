package api

import (
	"hash/crc32"
	"testing"
)

func TestCRC32CHeader(t *testing.T) {
	// The CRC-32C check value of "123456789" (RFC 3720, appendix B.4).
	sum := crc32.Checksum([]byte("123456789"), crc32.MakeTable(crc32.Castagnoli))
	if got := FormatCRC32C(sum); got != "e3069283" {
		t.Fatalf("FormatCRC32C(check value) = %q, want e3069283", got)
	}
	for _, v := range []uint32{0, 1, 0xe3069283, 0xffffffff, 0x0000abcd} {
		got, err := ParseCRC32C(FormatCRC32C(v))
		if err != nil || got != v {
			t.Errorf("round trip of %08x = %08x, %v", v, got, err)
		}
	}
	for _, bad := range []string{"", "e306928", "e30692830", "E3069283", "e306928g", " e306928", "0x069283"} {
		if _, err := ParseCRC32C(bad); err == nil {
			t.Errorf("ParseCRC32C(%q) succeeded", bad)
		}
	}
}
