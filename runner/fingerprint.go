package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// initFingerprint hashes everything `init` consumes, so that init can be
// skipped when none of it changed: the binary, the CLI config, the lock file,
// the backend configuration and its -backend-config inputs, and per module
// (the root and, transitively, local modules) the terraform blocks, module
// calls and the providers implied by resource types.
func initFingerprint(bin Binary, cliConfig, dir string, backendConfig []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "binary %s %s %s\n", bin.Name, bin.Version, bin.Path)
	for _, f := range []string{cliConfig, filepath.Join(dir, ".terraform.lock.hcl")} {
		if f == "" {
			continue
		}
		if err := hashFile(h, f); err != nil {
			return "", err
		}
	}
	for _, bc := range backendConfig {
		// A -backend-config value is either a file or key=value.
		fmt.Fprintf(h, "backend-config %s\n", bc)
		if !strings.Contains(bc, "=") {
			p := bc
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if err := hashFile(h, p); err != nil {
				return "", err
			}
		}
	}
	seen := map[string]bool{}
	if err := hashModule(h, dir, seen); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w hash.Hash, path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		fmt.Fprintf(w, "absent %s\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only: closing cannot lose data
	fmt.Fprintf(w, "file %s\n", path)
	_, err = io.Copy(w, f)
	return err
}

var initSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "terraform"},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "resource", LabelNames: []string{"type", "name"}},
		{Type: "data", LabelNames: []string{"type", "name"}},
	},
}

// hashModule writes the init-relevant parts of one module directory. Parse
// errors are not returned: init would report them better, so the fingerprint
// just includes the raw file and a plan will run init and show the error.
func hashModule(w hash.Hash, dir string, seen map[string]bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if seen[abs] {
		return nil
	}
	seen[abs] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".tf") || strings.HasSuffix(n, ".tf.json") || strings.HasSuffix(n, ".tofu") || strings.HasSuffix(n, ".tofu.json")) {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	p := hclparse.NewParser()
	var locals []string
	for _, name := range files {
		path := filepath.Join(dir, name)
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var f *hcl.File
		var diags hcl.Diagnostics
		if strings.HasSuffix(name, ".json") {
			f, diags = p.ParseJSON(src, path)
		} else {
			f, diags = p.ParseHCL(src, path)
		}
		if diags.HasErrors() || f == nil {
			fmt.Fprintf(w, "unparsable %s\n", path)
			w.Write(src)
			continue
		}
		content, _, _ := f.Body.PartialContent(initSchema)
		fmt.Fprintf(w, "module-file %s\n", path)
		for _, b := range content.Blocks {
			switch b.Type {
			case "terraform":
				w.Write(rangeBytes(src, b.DefRange, b.Body))
			case "module":
				attrs, _ := b.Body.JustAttributes()
				for _, key := range []string{"source", "version"} {
					if a, ok := attrs[key]; ok {
						fmt.Fprintf(w, "module %s %s=%s\n", b.Labels[0], key, a.Expr.Range().SliceBytes(src))
						if key == "source" {
							if v, d := a.Expr.Value(nil); !d.HasErrors() && v.Type().FriendlyName() == "string" {
								s := v.AsString()
								if strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") {
									locals = append(locals, filepath.Join(dir, s))
								}
							}
						}
					}
				}
			case "resource", "data":
				// The provider a resource implies is its type's prefix.
				typ, _, _ := strings.Cut(b.Labels[0], "_")
				fmt.Fprintf(w, "implies %s\n", typ)
			}
		}
	}
	for _, l := range locals {
		if err := hashModule(w, l, seen); err != nil {
			fmt.Fprintf(w, "missing module %s\n", l)
		}
	}
	return nil
}

// rangeBytes returns the source of a whole block: from its header to the end
// of its body.
func rangeBytes(src []byte, def hcl.Range, body hcl.Body) []byte {
	type ranger interface{ Range() hcl.Range }
	end := def.End.Byte
	if r, ok := body.(ranger); ok {
		end = r.Range().End.Byte
	}
	if def.Start.Byte < 0 || end > len(src) || def.Start.Byte > end {
		return nil
	}
	return src[def.Start.Byte:end]
}
