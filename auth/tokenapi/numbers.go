package tokenapi

// One spelling per number. A number or a duration of a request is taken
// only as written the one way every reader reads alike: a parameter or
// path value "42", never "+42", "042" or "-0"; a whole number in a body
// without a sign on 0, within the integers a double holds exactly
// (JavaScript's parsers read 9007199254740993 as ...992, another
// project); a real number in a body with no more digits than its value
// has (a decimal parser would read 10.000000000000000001 as more than
// 10), nor -0; a duration ("1h30m") without a sign, leading zeros, a
// trailing fractional zero, a repeated unit or units out of order
// ("1h0m0s", as Go writes durations, is fine).

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/tswgate/tswgate/auth"
)

// maxExactInt is the largest whole number every JSON parser reads
// exactly: 2^53-1, the last integer of a double's exact run.
const maxExactInt = 1<<53 - 1

// parseWhole reads a query or path value that is a whole number of 0 or
// more, spelt canonically: decimal digits, no sign, no leading zero. ok
// is false for anything else, or beyond int64.
func parseWhole(s string) (n int64, ok bool) {
	if s == "" || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// numberProblem says what is wrong with the spelling of value, a JSON
// value that decoded into a field of type typ, named name: "" when it is
// not a number, or one every parser reads as the value decoded.
func numberProblem(name string, typ reflect.Type, value []byte) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	s := string(value)
	switch typ.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return wholeProblem(name, s)
	case reflect.Float32, reflect.Float64:
		return realProblem(name, s)
	}
	return ""
}

// wholeProblem checks a whole number of a body (decoded already: no
// fraction, no exponent).
func wholeProblem(name, s string) string {
	if s == "-0" {
		return name + ": -0 is not how 0 is written; give 0"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxExactInt || n < -maxExactInt {
		return fmt.Sprintf("%s: %s is beyond ±%d, the whole numbers every JSON parser reads alike", name, truncate(s), int64(maxExactInt))
	}
	return ""
}

// realProblem checks a real number of a body: it must not be -0, and its
// digits must be those of the float64 it reads as (trailing zeros and
// exponents aside), so that a parser keeping more digits reads the same.
func realProblem(name, s string) string {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "" // out of range: decoding reported it
	}
	short := strconv.FormatFloat(v, 'g', -1, 64)
	if v == 0 && strings.HasPrefix(s, "-") {
		return name + ": " + truncate(s) + " is a negative zero; give 0"
	}
	if decimalOf(s) != decimalOf(short) {
		return fmt.Sprintf("%s: %s has more digits than a number here holds: it reads as %s; give %s", name, truncate(s), short, short)
	}
	return ""
}

// decimalOf writes a JSON number as its significant digits and the
// power of ten of the last one ("1.50e2" and "150" are both "15e1"): equal
// for two spellings of one decimal value. A zero is "0".
func decimalOf(s string) string {
	s = strings.TrimPrefix(s, "-")
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	e := 0
	if exp != "" {
		n, err := strconv.Atoi(exp)
		if err != nil {
			return "overflow " + s // an exponent beyond int: no float64 value is spelt so
		}
		e = n
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	e -= len(frac)
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		e++
	}
	if digits == "" {
		return "0"
	}
	return digits + "e" + strconv.Itoa(e)
}

// durationUnits are the units of a Go duration, largest first; µ has two
// spellings (U+00B5 and U+03BC), both of one rank.
var durationUnits = []struct {
	name string
	rank int
}{{"h", 6}, {"ms", 3}, {"m", 5}, {"s", 4}, {"us", 2}, {"µs", 2}, {"μs", 2}, {"ns", 1}}

// canonicalDuration says what is wrong with the spelling of s, a Go
// duration ("720h", "1h30m", "1.5h"), "" when nothing is: each part a
// number without a sign or leading zeros (a fraction without a trailing
// zero) and a unit, each unit once, largest first ("1h0m0s", as Go's
// Duration.String writes it, is one); "0" alone is zero.
func canonicalDuration(s string) string {
	const how = "write a duration with no sign and no leading zeros, each unit once, largest first, such as 720h, 1h30m or 1.5h"
	switch {
	case s == "0":
		return ""
	case s == "":
		return "empty; " + how
	case s[0] == '+' || s[0] == '-':
		return "a sign is not part of a duration; " + how
	}
	last := 7
	for rest := s; rest != ""; {
		_, unit, after, ok := durationPart(rest)
		if !ok {
			return "not written as a duration is; " + how
		}
		rank := unitRank(unit)
		if rank >= last {
			return "a unit repeated or out of order; " + how
		}
		last, rest = rank, after
	}
	return ""
}

// durationPart splits the first part of a duration off s: its number
// (canonical: no leading zero, a fraction with digits and no trailing
// zero) and its unit.
func durationPart(s string) (num, unit, rest string, ok bool) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num = s[:i]
	whole, frac, dot := strings.Cut(num, ".")
	switch {
	case whole == "" || strings.ContainsRune(frac, '.'),
		len(whole) > 1 && whole[0] == '0',
		dot && (frac == "" || strings.HasSuffix(frac, "0")):
		return "", "", "", false
	}
	for _, u := range durationUnits {
		if strings.HasPrefix(s[i:], u.name) {
			return num, u.name, s[i+len(u.name):], true
		}
	}
	return "", "", "", false
}

// unitRank is the rank of a duration unit, larger for longer units.
func unitRank(unit string) int {
	for _, u := range durationUnits {
		if u.name == unit {
			return u.rank
		}
	}
	return 0
}

// durationProblem names field's problem with the spelling of s, a
// duration that parses, "" when it has none.
func durationProblem(field, s string) string {
	if p := canonicalDuration(s); p != "" {
		return fmt.Sprintf("%s: %q: %s", field, truncate(s), p)
	}
	return ""
}

// readLifetime reads s, the expires_in of a request: a whole number of
// days ("30d", as lifetime policies are written) or a Go duration
// ("720h"), positive and spelt in the one way every reader reads alike.
// problem names the field and what is wrong, "" when nothing is.
func readLifetime(s string) (d time.Duration, problem string) {
	d, err := auth.ParseLifetime(s)
	switch {
	case err != nil || d <= 0:
		return 0, fmt.Sprintf("expires_in: %q is not a positive lifetime such as 30d or 720h", truncate(s))
	case strings.HasSuffix(s, "d"):
		return d, "" // ParseLifetime takes days in their one spelling only
	}
	return d, durationProblem("expires_in", s)
}
