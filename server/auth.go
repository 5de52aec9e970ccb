package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Auth decides who may do what. Reading (pages, GET API) is open unless
// ReadToken is set; everything that changes something needs a bearer token
// (its SHA-256 among TokenHashes), a dashboard session made with one, or a
// trusted reverse proxy's user header.
type Auth struct {
	TokenHashes [][32]byte
	ReadToken   bool
	// ProxyHeader names a header a trusted reverse proxy sets to the
	// authenticated user (e.g. X-Forwarded-User). Only use it behind such a proxy.
	ProxyHeader string

	once     sync.Once
	key      []byte
	mu       sync.Mutex
	sessions map[string]time.Time // session id -> expiry
}

// HashToken is how tokens are configured by hash: hex SHA-256.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

const sessionCookie = "trueline_session"

func (a *Auth) init() {
	a.once.Do(func() {
		a.key = make([]byte, 32)
		rand.Read(a.key)
		a.sessions = map[string]time.Time{}
	})
}

// validToken compares in constant time against every configured hash.
func (a *Auth) validToken(token string) bool {
	if token == "" {
		return false
	}
	h := HashToken(token)
	ok := 0
	for _, want := range a.TokenHashes {
		ok |= subtle.ConstantTimeCompare(h[:], want[:])
	}
	return ok == 1
}

// who identifies the caller, or "".
func (a *Auth) who(r *http.Request) string {
	a.init()
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && a.validToken(tok) {
		return "token"
	}
	if a.ProxyHeader != "" {
		if u := r.Header.Get(a.ProxyHeader); u != "" {
			return u
		}
	}
	if c, err := r.Cookie(sessionCookie); err == nil && a.validSession(c.Value) {
		return "session"
	}
	return ""
}

func (a *Auth) canRead(r *http.Request) bool  { return !a.ReadToken || a.who(r) != "" }
func (a *Auth) canWrite(r *http.Request) bool { return a.who(r) != "" }

func (a *Auth) validSession(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[id]
	return ok && time.Now().Before(exp)
}

// login makes a dashboard session for a valid token.
func (a *Auth) login(w http.ResponseWriter, token string) bool {
	a.init()
	if !a.validToken(token) {
		return false
	}
	b := make([]byte, 24)
	rand.Read(b)
	id := hex.EncodeToString(b)
	a.mu.Lock()
	a.sessions[id] = time.Now().Add(12 * time.Hour)
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	return true
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1})
}

// csrfToken binds a form to the caller's session.
func (a *Auth) csrfToken(r *http.Request) string {
	a.init()
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(c.Value))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF verifies a form's token: forms are only honoured with the token
// of the session that rendered them.
func (a *Auth) checkCSRF(r *http.Request) bool {
	want := a.csrfToken(r)
	got := r.PostFormValue("csrf")
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
