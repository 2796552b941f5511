package codecheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the most lines a function of non-test code may span,
// from its func keyword to its closing brace: one screen, read at once.
const maxFuncLines = 80

// longPending are the functions over maxFuncLines that are being
// rewritten elsewhere, by file and name, with why. The test fails on
// any other long function, and on an entry here that is no longer long:
// the list only shrinks.
var longPending = map[string]string{
	"auth/redisstore/redisstore.go (Store).Update": "rewritten with the store's expiry and count indexes",
	"auth/storetest/activity.go testClaimExpired":  "shares its claim helpers with the expiring-token contract",
}

// TestFunctionLength fails on each function or method of the module's
// non-test code (every .go file but _test.go ones, outside testdata) that
// spans more than maxFuncLines lines.
func TestFunctionLength(t *testing.T) {
	long := map[string]bool{}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()), fset.Position(fn.End())
			n := end.Line - start.Line + 1
			rel, _ := filepath.Rel(root, start.Filename)
			key := filepath.ToSlash(rel) + " " + funcName(fn)
			if _, pending := longPending[key]; pending {
				long[key] = n > maxFuncLines
				continue
			}
			if n > maxFuncLines {
				t.Errorf("%s:%d: %s is %d lines long, want at most %d: split it", start.Filename, start.Line, funcName(fn), n, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("read %d Go files under %s: not the module's root?", files, root)
	}
	for key := range longPending {
		if !long[key] {
			t.Errorf("%s is gone or at most %d lines long: remove it from longPending", key, maxFuncLines)
		}
	}
}

// funcName names fn as (T).Name, or Name.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	for {
		switch x := typ.(type) {
		case *ast.StarExpr:
			typ = x.X
			continue
		case *ast.IndexExpr:
			typ = x.X
			continue
		case *ast.IndexListExpr:
			typ = x.X
			continue
		}
		break
	}
	if id, ok := typ.(*ast.Ident); ok {
		return "(" + id.Name + ")." + fn.Name.Name
	}
	return fn.Name.Name
}
