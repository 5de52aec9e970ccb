package giteatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// NewUser creates a second, non-admin user and returns a token of it with
// every scope: what a user can do is then bounded by the user's own rights.
func (s *Server) NewUser(name string) string {
	s.t.Helper()
	s.API("POST", "/api/v1/admin/users", map[string]any{"username": name, "password": password, "email": name + "@example.invalid",
		"must_change_password": false}, nil)
	b, _ := json.Marshal(map[string]any{"name": name, "scopes": []string{"all"}})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/users/%s/tokens", s.URL, name), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(name, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read below; nothing to report
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		SHA1 string `json:"sha1"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &tok) != nil || tok.SHA1 == "" {
		s.t.Fatalf("token for %s: %s\n%s", name, resp.Status, body)
	}
	return tok.SHA1
}
