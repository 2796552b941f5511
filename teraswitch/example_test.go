package teraswitch

import (
	"encoding/json"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStandinDecodesIntoTypedStructs decodes the stand-in's answers into Go
// structs typed as a client of the API would type them (TeraSwitch's Go SDK
// uses netip.Addr for ipAddresses and time.Time for event timestamps): the
// spec's integers into ints, its addresses into net.IP, its dates into
// time.Time. A value such as "example ipAddresses" fails the decoding.
func TestStandinDecodesIntoTypedStructs(t *testing.T) {
	h := NewStandin()
	decode := func(method, target string, v any) {
		t.Helper()
		w := serve(h, method, target)
		if w.Code != 200 {
			t.Fatalf("%s %s: status %d", method, target, w.Code)
		}
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, target, err, w.Body)
		}
	}
	type event struct {
		Priority  int32
		Timestamp time.Time
		State     string
	}
	type metal struct {
		ID                 int64
		ProjectID          int64
		Created            time.Time
		Deleted            *time.Time
		ActiveDate         time.Time
		IPAddresses        []net.IP
		Ipv4DefaultGateway net.IP
		Ipv6DefaultGateway net.IP
		MemoryGb           int32
		MonthlyPrice       float64
		ReservePricing     bool
		RateID             string
		ProvisioningEvents []event
		Region             struct{ ID string }
		MetalDevice        struct {
			ID    int32
			BmcIP net.IP
		}
		Interfaces []struct {
			MacAddress string
			LinkSpeed  int32
		}
	}
	for _, target := range []string{"/v2/Metal/7", "/v2/Instance/7"} {
		var one struct {
			Success bool
			Result  metal
		}
		decode("GET", target, &one)
		m := one.Result
		if !one.Success || m.ID == 0 || m.ProjectID == 0 || m.Created.IsZero() {
			t.Errorf("GET %s: %+v", target, m)
		}
		if len(m.IPAddresses) != 1 || m.IPAddresses[0].To4() == nil {
			t.Errorf("GET %s: ipAddresses %v, want an IPv4 address", target, m.IPAddresses)
		}
		if m.Deleted != nil {
			t.Errorf("GET %s: deleted %v, want null for a live service", target, m.Deleted)
		}
		if _, err := time.Parse(time.RFC3339, m.Created.Format(time.RFC3339)); err != nil {
			t.Error(err)
		}
		if target == "/v2/Metal/7" {
			if m.Ipv4DefaultGateway.To4() == nil || m.Ipv6DefaultGateway.To16() == nil || m.Ipv6DefaultGateway.To4() != nil {
				t.Errorf("GET %s: gateways %v, %v", target, m.Ipv4DefaultGateway, m.Ipv6DefaultGateway)
			}
			if m.MetalDevice.BmcIP == nil || m.Region.ID == "" || len(m.ProvisioningEvents) != 1 || m.ProvisioningEvents[0].Timestamp.IsZero() {
				t.Errorf("GET %s: %+v", target, m)
			}
			if _, err := net.ParseMAC(m.Interfaces[0].MacAddress); err != nil {
				t.Errorf("GET %s: macAddress: %v", target, err)
			}
		}
	}

	var logs struct {
		Result []struct {
			Timestamp time.Time
			Name      string
		}
	}
	decode("GET", "/v2/Metal/7/Logs", &logs)
	if len(logs.Result) != 1 || logs.Result[0].Timestamp.IsZero() {
		t.Errorf("GET /v2/Metal/7/Logs: %+v", logs)
	}

	var invoice struct {
		Result struct {
			ID          int64
			AccountID   int64
			InvoiceDate time.Time
			DueDate     time.Time
			DatePaid    time.Time
			PayBefore   time.Time
			Total       float64
			Lines       []struct {
				ServiceID int64
				RegionID  string
			}
		}
	}
	decode("GET", "/v2/Invoice/9", &invoice)
	if r := invoice.Result; r.ID == 0 || r.InvoiceDate.IsZero() || r.PayBefore.IsZero() || len(r.Lines) != 1 || r.Lines[0].ServiceID == 0 {
		t.Errorf("GET /v2/Invoice/9: %+v", r)
	}

	var network struct {
		Result struct {
			ID              string
			DateTimeCreated time.Time
			V4Subnet        net.IP
			V4SubnetMask    string
			RegionID        string
		}
	}
	decode("GET", "/v2/Network/5", &network)
	if r := network.Result; r.DateTimeCreated.IsZero() || r.V4Subnet.To4() == nil || r.RegionID == "" {
		t.Errorf("GET /v2/Network/5: %+v", r)
	}
	if _, err := netip.ParsePrefix(network.Result.V4Subnet.String() + "/" + network.Result.V4SubnetMask); err != nil {
		t.Errorf("GET /v2/Network/5: subnet and mask: %v", err)
	}

	var volumes struct {
		Result []struct {
			VolumeID    string
			CreatedAt   time.Time
			UpdatedAt   time.Time
			Size        int32
			Attachments []struct {
				ServerID   int64
				AttachedAt time.Time
			}
		}
	}
	decode("GET", "/v2/Volume?projectId=42", &volumes)
	if len(volumes.Result) != 1 || volumes.Result[0].CreatedAt.IsZero() || len(volumes.Result[0].Attachments) != 1 ||
		volumes.Result[0].Attachments[0].AttachedAt.IsZero() {
		t.Errorf("GET /v2/Volume: %+v", volumes)
	}

	var keys struct {
		Result []struct {
			ID        int64
			ProjectID int64
			Created   time.Time
			Deleted   *time.Time
		}
	}
	decode("GET", "/v2/SshKey", &keys)
	if len(keys.Result) != 1 || keys.Result[0].Created.IsZero() || keys.Result[0].ProjectID == 0 {
		t.Errorf("GET /v2/SshKey: %+v", keys)
	}
}

// TestStandinValuesFollowSchema walks every answer of the stand-in with the
// schema of its operation: integers, numbers, booleans and enums must be
// of their types, and strings that the spec formats, or whose names say
// they are dates or addresses (the spec mostly types those as plain
// strings), must parse as such.
func TestStandinValuesFollowSchema(t *testing.T) {
	doc, err := parseDoc(spec)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := doc.operations()
	if err != nil {
		t.Fatal(err)
	}
	h := NewStandin()
	checked := map[string]int{}
	for _, op := range ops {
		if op.response == nil {
			continue
		}
		w := serve(h, op.Method, concrete(op.Path))
		dec := json.NewDecoder(w.Body)
		dec.UseNumber()
		var body any
		if err := dec.Decode(&body); err != nil {
			t.Fatalf("%s %s: %v", op.Method, op.Path, err)
		}
		c := &schemaChecker{t: t, schemas: doc.Components.Schemas, where: op.Method + " " + op.Path, seen: map[string]bool{}, counts: checked}
		c.check(op.response, body, "", "")
	}
	// The kinds of field the SDK decodes into typed values must all occur.
	for _, kind := range []string{"integer", "number", "boolean", "enum", "date-time", "ip", "subnet", "uuid"} {
		if checked[kind] == 0 {
			t.Errorf("no %s value checked", kind)
		}
	}
	t.Logf("checked %v", checked)
}

type schemaChecker struct {
	t       *testing.T
	schemas map[string]*schema
	where   string
	seen    map[string]bool // $refs being walked
	counts  map[string]int
}

var (
	timeName   = regexp.MustCompile(`(?i)^(created|updated|deleted|timestamp|date.*|.*date|.*At|payBefore)$`)
	ipName     = regexp.MustCompile(`(?i)(ipaddress|ipv4|ipv6|gateway|^ip$|Ip$)`)
	subnetName = regexp.MustCompile(`(?i)subnet$`)
)

func (c *schemaChecker) check(s *schema, v any, name, path string) {
	c.t.Helper()
	if s != nil && s.Ref != "" {
		ref := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		if c.seen[ref] {
			return
		}
		c.seen[ref] = true
		defer delete(c.seen, ref)
		s = c.schemas[ref]
	}
	if s == nil || v == nil {
		return // null: the stand-in writes it for nullable fields and cut cycles
	}
	bad := func(want string) {
		c.t.Helper()
		c.t.Errorf("%s: %s = %#v, want %s", c.where, path, v, want)
	}
	if len(s.Enum) > 0 {
		c.counts["enum"]++
		for _, e := range s.Enum {
			var x any
			if json.Unmarshal(e, &x) == nil && fmtJSON(x) == fmtJSON(v) {
				return
			}
		}
		bad("a member of its enum")
		return
	}
	switch {
	case len(s.AllOf) > 0 || len(s.Properties) > 0 || s.Type == "object":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("an object")
			return
		}
		props := map[string]*schema{}
		for _, part := range s.AllOf {
			if part.Ref != "" {
				part = c.schemas[strings.TrimPrefix(part.Ref, "#/components/schemas/")]
			}
			for k, p := range part.Properties {
				props[k] = p
			}
		}
		for k, p := range s.Properties {
			props[k] = p
		}
		for k, p := range props {
			if x, ok := obj[k]; ok {
				c.check(p, x, k, path+"."+k)
			}
		}
	case s.Type == "array":
		list, ok := v.([]any)
		if !ok {
			bad("an array")
			return
		}
		for i, x := range list {
			c.check(s.Items, x, name, path+"["+string(rune('0'+i))+"]")
		}
	case s.Type == "integer":
		c.counts["integer"]++
		if n, ok := v.(json.Number); !ok {
			bad("an integer")
		} else if _, err := n.Int64(); err != nil {
			bad("an integer")
		}
	case s.Type == "number":
		c.counts["number"]++
		if _, ok := v.(json.Number); !ok {
			bad("a number")
		}
	case s.Type == "boolean":
		c.counts["boolean"]++
		if _, ok := v.(bool); !ok {
			bad("a boolean")
		}
	case s.Type == "string":
		str, ok := v.(string)
		if !ok {
			bad("a string")
			return
		}
		switch {
		case s.Format == "date-time" || timeName.MatchString(name):
			c.counts["date-time"]++
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				bad("an RFC 3339 date-time")
			}
		case s.Format == "uuid":
			c.counts["uuid"]++
			if len(str) != 36 || strings.Count(str, "-") != 4 {
				bad("a UUID")
			}
		case s.Format == "ipv4" || s.Format == "ipv6" || ipName.MatchString(name):
			c.counts["ip"]++
			if _, err := netip.ParseAddr(str); err != nil {
				bad("an IP address")
			}
		case subnetName.MatchString(name):
			c.counts["subnet"]++
			if _, err := netip.ParseAddr(str); err != nil {
				bad("a network address")
			}
		case strings.HasPrefix(str, "example") && (name == "id" || strings.HasSuffix(name, "Id")) && integerElsewhere(c.schemas, name):
			bad("a numeric id, as the spec types " + name + " elsewhere")
		}
	}
}

// integerElsewhere reports whether some schema types a property called
// name as an integer.
func integerElsewhere(schemas map[string]*schema, name string) bool {
	for _, s := range schemas {
		if p, ok := s.Properties[name]; ok && p.Type == "integer" {
			return true
		}
	}
	return false
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDescriptionExample(t *testing.T) {
	for _, tc := range []struct{ desc, want string }{
		{"The IPv4 network address. For example: 10.99.0.0", "10.99.0.0"},
		{"The number of bits for the netmask in CIDR notation. For example: 24", "24"},
		{"The region this service should be created in (for example: US-EAST-1).  If", "US-EAST-1"},
		{"This would be in the format of ```nvme0n1```\r\nor ```nvme0n2```", "nvme0n1"},
		{`Metal services are of type "MTL".`, "MTL"},
		{"The members of the RAID array.\r\nFor example:\r\n    \"members\": [", ""},
		{"For example,\r\n4c / 8t will denote", ""},
		{"", ""},
	} {
		if got := descriptionExample(tc.desc); got != tc.want {
			t.Errorf("descriptionExample(%q) = %q, want %q", tc.desc, got, tc.want)
		}
	}
}
