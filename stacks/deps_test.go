package stacks

import (
	"reflect"
	"testing"
	"testing/fstest"
)

func TestAffected(t *testing.T) {
	mod := func(src string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("module \"m\" {\n  source = \"" + src + "\"\n}\n")}
	}
	fsys := fstest.MapFS{
		"stacks/web/stack.hcl":     {Data: []byte("stack {\n  backend_config = [\"../../backends/prod.hcl\"]\n  workspace \"prod\" {\n    var_files = [\"../../vars/prod.tfvars\"]\n  }\n}\n")},
		"stacks/web/main.tf":       mod("../../modules/service"),
		"stacks/api/stack.hcl":     {Data: []byte("stack {}\n")},
		"stacks/api/main.tf":       mod("../../modules/service"),
		"stacks/db/stack.hcl":      {Data: []byte("stack {}\n")},
		"stacks/db/main.tf":        {Data: []byte("resource \"x\" \"y\" {}\n")},
		"stacks/net/stack.hcl":     {Data: []byte("stack {}\n")},
		"stacks/net/main.tf":       mod("git::https://example.com/net.git"),
		"modules/service/main.tf":  mod("../lb"),
		"modules/lb/main.tf":       {Data: []byte("")},
		"modules/unused/main.tf":   {Data: []byte("")},
		"backends/prod.hcl":        {Data: []byte("bucket = \"state\"\n")},
		"vars/prod.tfvars":         {Data: []byte("x = 1\n")},
		"stacks/web/other.tf.json": {Data: []byte(`{"module": {"n": {"source": "../../modules/unused"}}}`)},
	}
	all, err := DiscoverFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		changed []string
		want    []string
	}{
		{[]string{"modules/lb/main.tf"}, []string{"stacks/api", "stacks/web"}},
		{[]string{"modules/service/variables.tf"}, []string{"stacks/api", "stacks/web"}},
		{[]string{"modules/unused/main.tf"}, []string{"stacks/web"}},
		{[]string{"stacks/db/main.tf"}, []string{"stacks/db"}},
		{[]string{"backends/prod.hcl"}, []string{"stacks/web"}},
		{[]string{"vars/prod.tfvars"}, []string{"stacks/web"}},
		{[]string{"README.md", "stacks/dbx/main.tf"}, nil},
		{[]string{"stacks/net/stack.hcl"}, []string{"stacks/net"}},
	}
	for _, tc := range tests {
		if got := Affected(fsys, all, tc.changed); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Affected(%v) = %v, want %v", tc.changed, got, tc.want)
		}
	}
}
