package reply

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the reply table in docs/errors.md from Markdown()")

const (
	errorsDoc  = "../../docs/errors.md"
	beginTable = "<!-- BEGIN REPLY TABLE -->\n"
	endTable   = "<!-- END REPLY TABLE -->"
)

// TestErrorsDoc keeps the table in docs/errors.md equal to Markdown(): the
// text between the marker lines is the table, byte for byte.
func TestErrorsDoc(t *testing.T) {
	b, err := os.ReadFile(errorsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, beginTable)
	end := strings.Index(doc, endTable)
	if start < 0 || end < start {
		t.Fatalf("%s must hold the reply table between a line %q and a line %q", errorsDoc, strings.TrimSpace(beginTable), endTable)
	}
	start += len(beginTable)
	want := Markdown()
	if doc[start:end] == want {
		return
	}
	if *update {
		if err := os.WriteFile(errorsDoc, []byte(doc[:start]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the reply table in %s", errorsDoc)
		return
	}
	t.Errorf("the reply table in %s differs from reply.Markdown(); run\n\tgo test ./internal/reply -run TestErrorsDoc -update\nand review the change (and the prose around the table)", errorsDoc)
}

func TestReplies(t *testing.T) {
	names := map[string]bool{}
	for _, r := range append(append([]*Reply{}, Own...), Protocol...) {
		if r.Name == "" || names[r.Name] {
			t.Errorf("reply %d %q: Name %q is empty or not unique", r.Code, r.Text, r.Name)
		}
		names[r.Name] = true
	}
	for _, r := range Own {
		if r.Code < 200 || r.Code > 599 {
			t.Errorf("%s: code %d is not a 3-digit SMTP reply code", r.Name, r.Code)
		}
		if class := r.Enhanced[0]; class != r.Code/100 || class != 2 && class != 4 && class != 5 {
			t.Errorf("%s: enhanced code %d.%d.%d does not match the class of %d", r.Name, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Code)
		}
		if strings.TrimSpace(r.Text) == "" || strings.TrimSpace(r.Cause) == "" || strings.TrimSpace(r.Fix) == "" {
			t.Errorf("%s: Text, Cause and Fix must all be set", r.Name)
		}
	}
}

// TestOwnIsComplete checks that every package-level &Reply{...} variable is
// listed in Own, so none is missing from the docs.
func TestOwnIsComplete(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var decls []ast.Decl
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		decls = append(decls, f.Decls...)
	}
	declared := map[string]bool{}
	listed := map[string]bool{}
	for _, decl := range decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				switch v := vs.Values[i].(type) {
				case *ast.UnaryExpr: // &Reply{...}
					if cl, ok := v.X.(*ast.CompositeLit); ok {
						if id, ok := cl.Type.(*ast.Ident); ok && id.Name == "Reply" {
							declared[name.Name] = true
						}
					}
				case *ast.CompositeLit: // Own = []*Reply{...}
					if name.Name == "Own" {
						for _, e := range v.Elts {
							if id, ok := e.(*ast.Ident); ok {
								listed[id.Name] = true
							}
						}
					}
				}
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("found no reply variables in the package")
	}
	for name := range declared {
		if !listed[name] {
			t.Errorf("reply %s is not listed in Own, so docs/errors.md does not show it", name)
		}
	}
	if len(listed) != len(Own) {
		t.Errorf("Own lists %d replies, of which %d are reply variables of reply.go", len(Own), len(listed))
	}
}
