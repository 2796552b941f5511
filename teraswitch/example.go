package teraswitch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Example values the stand-in writes, in the forms the real API sends.
// Addresses are from the documentation ranges (RFC 5737, RFC 3849,
// RFC 7042).
const (
	exampleTime     = "2024-01-02T03:04:05Z" // RFC 3339, what the API's .NET serializer writes for a UTC time
	exampleDate     = "2024-01-02"
	exampleUUID     = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	exampleIPv4     = "192.0.2.10"
	exampleIPv6     = "2001:db8::10"
	exampleGateway4 = "192.0.2.1"
	exampleGateway6 = "2001:db8::1"
	exampleSubnet   = "192.0.2.0"
	examplePrefix   = "192.0.2.0/24"
	exampleMAC      = "00:00:5e:00:53:01"
	exampleURL      = "https://example.com/"
	exampleEmail    = "user@example.com"
)

// emptyEnumValues gives a value to the string enums the spec declares with
// no members. Status and EventState are the values TeraSwitch's Go SDK
// (gotsw) names; ServiceType is one of the API's service kinds, AccountRole
// one of the product's roles.
var emptyEnumValues = map[string]string{
	"Status":      "Active",
	"EventState":  "Complete",
	"ServiceType": "Metal",
	"AccountRole": "Owner",
}

// exampleGen writes example JSON values for OpenAPI schemas: what the real
// API would send for each field, as far as the spec tells. In order: the
// field's own example, its enum's first member, an example its description
// gives ("For example: 10.99.0.0", "```nvme0n1```"), its format (date-time,
// uuid, ipv4, ...), an example or format the spec gives a field of the
// same name elsewhere, and last its name (ipAddresses, bmcIp, *Gateway,
// created, *At, *Date, macAddress, ...), since the spec types most dates
// and addresses as plain strings.
type exampleGen struct {
	schemas map[string]*schema
	active  map[string]bool // $refs being expanded, to cut cycles
	// byName holds, per property name, an example found for a string
	// property of that name somewhere in the spec (its example, or one
	// its description gives); see sharesExamples.
	byName map[string]string
	// uuidNames are the property names that some schema formats as uuid
	// or describes as a UUID.
	uuidNames map[string]bool
	// intNames are the property names that some schema types as integer.
	intNames map[string]bool
}

const maxExampleDepth = 12

func newExampleGen(schemas map[string]*schema) *exampleGen {
	g := &exampleGen{
		schemas: schemas, active: map[string]bool{},
		byName: map[string]string{}, uuidNames: map[string]bool{}, intNames: map[string]bool{},
	}
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	described := map[string]string{} // examples from descriptions, used after examples proper
	for _, n := range names {
		props := schemas[n].Properties
		for _, pn := range sortedKeys(props) {
			p := props[pn]
			switch p.Type {
			case "integer":
				g.intNames[pn] = true
			case "string":
				if p.Format == "uuid" || strings.Contains(p.Description, "UUID") {
					g.uuidNames[pn] = true
				}
				var ex string
				if json.Unmarshal(p.Example, &ex) == nil && ex != "" {
					if _, ok := g.byName[pn]; !ok {
						g.byName[pn] = ex
					}
				}
				if ex := descriptionExample(p.Description); ex != "" {
					if _, ok := described[pn]; !ok {
						described[pn] = ex
					}
				}
			}
		}
	}
	for pn, ex := range described {
		if _, ok := g.byName[pn]; !ok {
			g.byName[pn] = ex
		}
	}
	return g
}

var (
	// backticked matches ```nvme0n1``` in a description.
	backticked = regexp.MustCompile("```([^`\\s]+)```")
	// forExample matches "For example: 10.99.0.0" in a description.
	forExample = regexp.MustCompile(`(?i)\bfor example:[ \t]*([A-Za-z0-9][A-Za-z0-9./:-]*[A-Za-z0-9])`)
	// ofType matches `of type "MTL"` in a description.
	ofType = regexp.MustCompile(`\bof type "([^"\s]+)"`)
)

// descriptionExample returns the example value a description gives, or "".
func descriptionExample(desc string) string {
	for _, re := range []*regexp.Regexp{backticked, forExample, ofType} {
		if m := re.FindStringSubmatch(desc); m != nil {
			return m[1]
		}
	}
	return ""
}

// envelope returns the body of a success response with schema s: the API's
// envelope with success true and an empty message, then s's other fields.
func (g *exampleGen) envelope(s *schema) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"success":true,"message":""`)
	if s != nil {
		_, ref, err := g.resolve(s)
		if err != nil {
			return nil, err
		}
		props, err := g.properties(s, 0)
		if err != nil {
			return nil, err
		}
		for _, name := range sortedKeys(props) {
			if name == "success" || name == "message" {
				continue
			}
			b.WriteByte(',')
			writeString(&b, name)
			b.WriteByte(':')
			if err := g.value(&b, props[name], name, ref, 1); err != nil {
				return nil, err
			}
		}
	}
	b.WriteByte('}')
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("generated invalid JSON: %s", b.Bytes())
	}
	return b.Bytes(), nil
}

// resolve follows s's $ref, if any, and returns the schema's name.
func (g *exampleGen) resolve(s *schema) (*schema, string, error) {
	if s == nil || s.Ref == "" {
		return s, "", nil
	}
	name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/")
	if !ok {
		return nil, "", fmt.Errorf("unsupported $ref %q", s.Ref)
	}
	t, ok := g.schemas[name]
	if !ok {
		return nil, "", fmt.Errorf("unknown schema %q", name)
	}
	return t, name, nil
}

// properties returns the properties of object schema s, merging allOf parts.
func (g *exampleGen) properties(s *schema, depth int) (map[string]*schema, error) {
	s, _, err := g.resolve(s)
	if err != nil || s == nil || depth > maxExampleDepth {
		return nil, err
	}
	props := make(map[string]*schema, len(s.Properties))
	for _, part := range s.AllOf {
		more, err := g.properties(part, depth+1)
		if err != nil {
			return nil, err
		}
		for k, v := range more {
			props[k] = v
		}
	}
	for k, v := range s.Properties {
		props[k] = v
	}
	return props, nil
}

// value writes an example value for s, the schema of a field called name
// of the object schema called parent ("" when unnamed).
func (g *exampleGen) value(b *bytes.Buffer, s *schema, name, parent string, depth int) error {
	s, ref, err := g.resolve(s)
	if err != nil {
		return err
	}
	if s == nil || depth > maxExampleDepth || g.active[ref] {
		b.WriteString("null")
		return nil
	}
	if ref != "" {
		g.active[ref] = true
		defer delete(g.active, ref)
	}
	switch {
	case len(s.Example) > 0:
		return json.Compact(b, s.Example)
	case len(s.Enum) > 0:
		return json.Compact(b, s.Enum[0])
	case len(s.OneOf) > 0:
		return g.value(b, s.OneOf[0], name, parent, depth+1)
	case len(s.AnyOf) > 0:
		return g.value(b, s.AnyOf[0], name, parent, depth+1)
	case s.Type == "object" || len(s.Properties) > 0 || len(s.AllOf) > 0:
		return g.object(b, s, ref, depth)
	case s.Type == "array":
		if _, item, err := g.resolve(s.Items); err != nil {
			return err
		} else if s.Items == nil || depth+1 > maxExampleDepth || g.active[item] {
			b.WriteString("[]") // an empty list rather than [null] where a cycle is cut
			return nil
		}
		b.WriteByte('[')
		if err := g.value(b, s.Items, name, parent, depth+1); err != nil {
			return err
		}
		b.WriteByte(']')
	case s.Type == "integer":
		b.WriteString("1")
	case s.Type == "number":
		b.WriteString("1.5")
	case s.Type == "boolean":
		b.WriteString("true")
	case s.Type == "string" && s.Nullable && strings.EqualFold(name, "deleted"):
		// A resource the API returns is not deleted: the API sends null.
		b.WriteString("null")
	case s.Type == "string":
		writeString(b, g.exampleString(s, ref, name, parent))
	default:
		b.WriteString("null")
	}
	return nil
}

// object writes an example object for s, whose schema is called ref.
func (g *exampleGen) object(b *bytes.Buffer, s *schema, ref string, depth int) error {
	props, err := g.properties(s, depth)
	if err != nil {
		return err
	}
	b.WriteByte('{')
	for i, name := range sortedKeys(props) {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, name)
		b.WriteByte(':')
		if err := g.value(b, props[name], name, ref, depth+1); err != nil {
			return err
		}
	}
	if len(props) == 0 && len(s.AdditionalProperties) > 0 && s.AdditionalProperties[0] == '{' {
		var extra schema
		if err := json.Unmarshal(s.AdditionalProperties, &extra); err != nil {
			return err
		}
		b.WriteString(`"key":`)
		if err := g.value(b, &extra, "key", ref, depth+1); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	return nil
}

// exampleString returns what the API would send for string schema s
// (called ref, when it is a named schema) as the field name of the object
// schema parent.
func (g *exampleGen) exampleString(s *schema, ref, name, parent string) string {
	if v, ok := emptyEnumValues[ref]; ok {
		return v
	}
	if ex := descriptionExample(s.Description); ex != "" {
		return ex
	}
	switch s.Format {
	case "date-time":
		return exampleTime
	case "date":
		return exampleDate
	case "uuid":
		return exampleUUID
	case "ipv4":
		return exampleIPv4
	case "ipv6":
		return exampleIPv6
	case "uri", "url":
		return exampleURL
	case "email":
		return exampleEmail
	}
	// A plain "id" field is named by its object: Region's id is a regionId.
	if name == "id" && parent != "" {
		for _, alias := range idAliases(parent) {
			if _, ok := g.byName[alias]; (ok && sharesExamples(alias)) || g.uuidNames[alias] {
				name = alias
				break
			}
		}
	}
	if ex, ok := g.byName[name]; ok && sharesExamples(name) {
		return ex
	}
	if g.uuidNames[name] {
		return exampleUUID
	}
	return g.stringByName(name)
}

// sharesExamples reports whether a field called name takes the example
// given for a field of the same name in another schema: ids (regionId,
// tierId) and network fields (v4Subnet, v4SubnetMask) mean the same
// everywhere; status or objectType do not (an invoice's "Paid", a key's
// "KEY").
func sharesExamples(name string) bool {
	return strings.HasSuffix(name, "Id") || strings.Contains(strings.ToLower(name), "subnet")
}

// idAliases returns the names a field "id" of schema parent may go by
// elsewhere, longest first: MetalTier's id is a metalTierId or a tierId.
func idAliases(parent string) []string {
	var out []string
	for i, r := range parent {
		if i == 0 || (r >= 'A' && r <= 'Z') {
			rest := parent[i:]
			out = append(out, strings.ToLower(rest[:1])+rest[1:]+"Id")
		}
	}
	return out
}

// stringByName returns an example string for a field from its name alone.
func (g *exampleGen) stringByName(name string) string {
	lower := strings.ToLower(name)
	switch {
	case strings.Contains(lower, "gateway") && strings.Contains(lower, "ipv6"):
		return exampleGateway6
	case strings.Contains(lower, "gateway"):
		return exampleGateway4
	case strings.Contains(lower, "ipv6"):
		return exampleIPv6
	case strings.Contains(lower, "ipaddress"), strings.Contains(lower, "ipv4"),
		lower == "ip", strings.HasSuffix(name, "Ip"):
		return exampleIPv4
	case strings.Contains(lower, "cidr"), strings.Contains(lower, "prefix"):
		return examplePrefix
	case strings.Contains(lower, "subnetmask"), strings.Contains(lower, "netmask"):
		return "24"
	case strings.Contains(lower, "subnet"):
		return exampleSubnet
	case strings.Contains(lower, "macaddress"):
		return exampleMAC
	case strings.HasSuffix(lower, "url"), strings.HasSuffix(lower, "uri"):
		return exampleURL
	case strings.Contains(lower, "email"):
		return exampleEmail
	case strings.HasPrefix(lower, "date"), strings.HasSuffix(lower, "date"), strings.HasSuffix(name, "At"),
		strings.HasSuffix(lower, "timestamp"), strings.HasSuffix(name, "Before"), strings.HasSuffix(name, "After"),
		lower == "created", lower == "updated", lower == "deleted":
		return exampleTime
	case lower == "id" || strings.HasSuffix(name, "Id"):
		if g.intNames[name] {
			// The spec types this id as an integer elsewhere: the API
			// writes it as a numeric string here.
			return "1"
		}
		return "example-" + name
	case name == "" || name == "key":
		return "example"
	}
	return "example " + name
}
