// Package teraswitch holds what tswgate knows about the TeraSwitch cloud API
// it guards: the API's OpenAPI 3 document, the operations it declares, and a
// stand-in server that answers them for tests, the quickstart and benchmarks.
package teraswitch

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// spec is TeraSwitch's OpenAPI 3 document, copied unchanged from the public
// repository github.com/TeraSwitch/terraform-provider-teraswitch, file
// client/swagger.json at commit 33640d6a0b2bb682ad13c384a5b75cfe80be6610.
//
//go:embed openapi-v2.json
var spec []byte

// Spec returns the embedded OpenAPI document. The caller must not modify it.
func Spec() []byte { return spec }

// Operation is one operation (method and path) the API declares.
type Operation struct {
	// Method is the upper-case HTTP method, e.g. "GET".
	Method string
	// Path is the path template as the spec writes it, e.g.
	// "/v2/Instance/{id}".
	Path string
	// Query lists the names of the operation's query parameters, in the
	// order the spec declares them.
	Query []string
	// HasBody reports whether the operation declares a request body.
	HasBody bool
}

// Operations parses the embedded spec and returns its operations sorted by
// path, then method.
func Operations() ([]Operation, error) {
	ops, err := parseOperations(spec)
	if err != nil {
		return nil, err
	}
	out := make([]Operation, len(ops))
	for i, op := range ops {
		out[i] = op.Operation
	}
	return out, nil
}

// OpenAPI structures, reduced to what tswgate reads.
type (
	openAPIDoc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]*schema `json:"schemas"`
		} `json:"components"`
	}

	openAPIOperation struct {
		Parameters  []openAPIParameter         `json:"parameters"`
		RequestBody json.RawMessage            `json:"requestBody"`
		Responses   map[string]openAPIResponse `json:"responses"`
	}

	openAPIParameter struct {
		Name string `json:"name"`
		In   string `json:"in"`
	}

	openAPIResponse struct {
		Content map[string]struct {
			Schema *schema `json:"schema"`
		} `json:"content"`
	}

	// schema is the subset of an OpenAPI schema object the stand-in uses to
	// build example values.
	schema struct {
		Ref                  string             `json:"$ref"`
		Type                 string             `json:"type"`
		Format               string             `json:"format"`
		Description          string             `json:"description"`
		Enum                 []json.RawMessage  `json:"enum"`
		Example              json.RawMessage    `json:"example"`
		Nullable             bool               `json:"nullable"`
		Properties           map[string]*schema `json:"properties"`
		AdditionalProperties json.RawMessage    `json:"additionalProperties"`
		Items                *schema            `json:"items"`
		AllOf                []*schema          `json:"allOf"`
		OneOf                []*schema          `json:"oneOf"`
		AnyOf                []*schema          `json:"anyOf"`
	}
)

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

// operation is an Operation with the schema of its success response.
type operation struct {
	Operation
	response *schema // nil when the spec declares no JSON success body
}

// parseOperations reads the operations of an OpenAPI document.
func parseOperations(data []byte) ([]operation, error) {
	doc, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	return doc.operations()
}

func parseDoc(data []byte) (*openAPIDoc, error) {
	var doc openAPIDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing OpenAPI document: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, fmt.Errorf("OpenAPI document declares no paths")
	}
	return &doc, nil
}

func (doc *openAPIDoc) operations() ([]operation, error) {
	var ops []operation
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("path %q does not start with /", path)
		}
		var shared []openAPIParameter
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return nil, fmt.Errorf("path %s: parameters: %w", path, err)
			}
		}
		for key, raw := range item {
			if !httpMethods[key] {
				continue
			}
			var o openAPIOperation
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("%s %s: %w", strings.ToUpper(key), path, err)
			}
			op := operation{Operation: Operation{
				Method:  strings.ToUpper(key),
				Path:    path,
				HasBody: len(o.RequestBody) > 0 && string(o.RequestBody) != "null",
			}}
			for _, p := range append(shared[:len(shared):len(shared)], o.Parameters...) {
				if p.In == "query" && !contains(op.Query, p.Name) {
					op.Query = append(op.Query, p.Name)
				}
			}
			op.response = successSchema(o.Responses)
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops, nil
}

// successSchema returns the JSON schema of the operation's lowest 2xx
// response, preferring application/json among its content types.
func successSchema(responses map[string]openAPIResponse) *schema {
	codes := make([]string, 0, len(responses))
	for code := range responses {
		if len(code) == 3 && code[0] == '2' {
			codes = append(codes, code)
		}
	}
	if len(codes) == 0 {
		return nil
	}
	sort.Strings(codes)
	content := responses[codes[0]].Content
	if c, ok := content["application/json"]; ok {
		return c.Schema
	}
	types := make([]string, 0, len(content))
	for t := range content {
		if strings.Contains(t, "json") {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		return nil
	}
	sort.Strings(types)
	return content[types[0]].Schema
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
