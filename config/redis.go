package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// DefaultRedisPort is the port of a Redis address that names none.
const DefaultRedisPort = "6379"

// RedisTarget is a parsed Redis URL: what a Redis client needs to connect.
// Its String method does not show the password.
type RedisTarget struct {
	// Addrs are host:port addresses: of the server, of the seed nodes of a
	// Redis Cluster, or of the Sentinels when MasterName is set.
	Addrs []string
	// Username and Password authenticate to Redis (to the master, with
	// Sentinel).
	Username, Password string
	// DB is the database number; always 0 with Cluster.
	DB int
	// TLS is set by the rediss:// scheme.
	TLS bool
	// MasterName is the Sentinel master's name; empty without Sentinel.
	MasterName string
	// Cluster selects Redis Cluster.
	Cluster bool
}

// String describes t without its password.
func (t RedisTarget) String() string {
	return fmt.Sprintf("addrs=%s username=%q password=%s db=%d tls=%t master_name=%q cluster=%t",
		strings.Join(t.Addrs, ","), t.Username, setOrUnset(t.Password != ""), t.DB, t.TLS, t.MasterName, t.Cluster)
}

// GoString is String, so that %#v does not show the password either.
func (t RedisTarget) GoString() string { return "config.RedisTarget{" + t.String() + "}" }

// redisParams are the query parameters ParseRedisURL accepts.
var redisParams = []string{"addr", "master_name", "cluster"}

const redisForm = "use redis://[user:password@]host[:port][/db], or rediss:// for TLS"

// ParseRedisURL parses and checks a Redis URL of the form
//
//	redis://[user:password@]host[:port][/db][?addr=host2:port&addr=host3:port&master_name=mymaster&cluster=true]
//
// rediss:// instead of redis:// selects TLS. The port defaults to 6379 (also
// for addr and Sentinel addresses, which usually listen on 26379, so give
// their port). Each addr parameter adds an address after the URL's host;
// several addresses need cluster=true (Redis Cluster seed nodes) or
// master_name (Sentinel addresses). The db is 0 by default and must be 0
// with cluster=true. User name and password are percent-encoded.
//
// Error messages never include the password.
func ParseRedisURL(s string) (RedisTarget, error) {
	var t RedisTarget
	u, err := url.Parse(s)
	if err != nil {
		// The parser's message may quote pieces of a misplaced password.
		return t, errors.New("is not a valid URL; percent-encode special characters in the password " +
			"(% as %25, / as %2F, ? as %3F, # as %23, @ as %40), and " + redisForm)
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		t.TLS = true
	case "":
		return t, errors.New("has no scheme; " + redisForm)
	default:
		return t, fmt.Errorf("scheme %q is not supported; %s", u.Scheme, redisForm)
	}
	if u.Opaque != "" || u.Host == "" {
		return t, errors.New("has no host; " + redisForm)
	}
	if u.Fragment != "" {
		return t, errors.New("must not have a fragment (#...); percent-encode # in the password as %23")
	}
	if u.User != nil {
		t.Username = u.User.Username()
		t.Password, _ = u.User.Password()
	}
	addr, err := redisAddr(u.Host)
	if err != nil {
		return t, err
	}
	t.Addrs = []string{addr}

	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 || strings.HasPrefix(p, "+") {
			return t, errors.New("the path must be empty or a database number such as /0; " + redisForm)
		}
		t.DB = db
	}

	if err := t.parseQuery(u.RawQuery); err != nil {
		return t, err
	}
	return t, t.check()
}

// parseQuery reads the URL's query parameters into t.
func (t *RedisTarget) parseQuery(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return errors.New("the query (?...) is not valid; use ?addr=host:port&master_name=NAME&cluster=true")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		if k != "addr" && len(vs) > 1 {
			return fmt.Errorf("parameter %q is given %d times; give it once", k, len(vs))
		}
		switch k {
		case "addr":
			for _, v := range vs {
				a, err := redisAddr(v)
				if err != nil {
					return err
				}
				t.Addrs = append(t.Addrs, a)
			}
		case "master_name":
			if vs[0] == "" {
				return errors.New("master_name is empty; set it to the Sentinel master's name, such as master_name=mymaster")
			}
			t.MasterName = vs[0]
		case "cluster":
			b, err := strconv.ParseBool(vs[0])
			if err != nil {
				return fmt.Errorf("cluster=%s is not a boolean; use cluster=true or cluster=false", vs[0])
			}
			t.Cluster = b
		default:
			return fmt.Errorf("unknown parameter %q; use %s", k, orList(redisParams))
		}
	}
	return nil
}

// check checks that t's addresses, database and mode fit together.
func (t *RedisTarget) check() error {
	seen := make(map[string]bool, len(t.Addrs))
	for _, a := range t.Addrs {
		if seen[a] {
			return fmt.Errorf("address %s is given twice; give each address once", a)
		}
		seen[a] = true
	}
	switch {
	case t.Cluster && t.MasterName != "":
		return errors.New("cluster=true and master_name exclude each other; use master_name for Sentinel or cluster=true for Redis Cluster")
	case t.Cluster && t.DB != 0:
		return fmt.Errorf("database %d is not possible with cluster=true (Redis Cluster has only database 0); remove /%d from the URL", t.DB, t.DB)
	case len(t.Addrs) > 1 && !t.Cluster && t.MasterName == "":
		return errors.New("several addresses need cluster=true (Redis Cluster) or master_name=NAME (Sentinel); or give a single address")
	}
	return nil
}

// redisAddr checks a host[:port] address and adds the default port.
func redisAddr(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil { // no port, or not an address at all
		host, port = a, ""
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		} else if strings.Contains(host, ":") {
			return "", fmt.Errorf("address %q is not valid; use host:port, with IPv6 addresses in brackets: [::1]:6379", a)
		}
	}
	if host == "" || strings.ContainsAny(host, " /?#@[]") {
		return "", fmt.Errorf("address %q has no valid host; use host:port such as redis.internal:6379", a)
	}
	if port == "" {
		port = DefaultRedisPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("address %q has an invalid port; use a port from 1 to 65535", a)
	}
	return net.JoinHostPort(host, port), nil
}

var dbPath = regexp.MustCompile(`^/?[0-9]*$`)

// redactURL returns s with its credentials replaced by xxxxx, for logs.
// With params (a Redis URL), the values of other query parameters and any
// path other than a database number are hidden too, since a password with
// unencoded special characters may have landed there. A URL that does not
// parse is not shown at all.
func redactURL(s string, params []string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL, hidden)"
	}
	const x = "xxxxx"
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(x, x)
		} else {
			u.User = url.User(x)
		}
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = x, ""
	}
	if params != nil {
		if !dbPath.MatchString(u.Path) || u.RawPath != "" {
			u.Path, u.RawPath = "/"+x, ""
		}
		if u.RawQuery != "" {
			q, err := url.ParseQuery(u.RawQuery)
			if err != nil {
				u.RawQuery = x
			} else {
				for k, vs := range q {
					if !slices.Contains(params, k) {
						for i := range vs {
							vs[i] = x
						}
					}
				}
				u.RawQuery = q.Encode()
			}
		}
	}
	return u.String()
}
