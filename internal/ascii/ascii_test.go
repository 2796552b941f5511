package ascii

import (
	"strconv"
	"testing"
)

func TestUnhex(t *testing.T) {
	for c := 0; c < 256; c++ {
		v, ok := Unhex(byte(c))
		want, err := strconv.ParseUint(string(rune(c)), 16, 8)
		if ok != (err == nil) || ok && uint64(v) != want {
			t.Errorf("Unhex(%#02x) = %d, %v; want %d, %v", c, v, ok, want, err == nil)
		}
	}
}
