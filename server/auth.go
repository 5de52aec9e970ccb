package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Auth decides who may do what. Reading (pages, API, report, metrics) is
// open unless ReadToken is set. The API changes things only for a bearer
// token (its SHA-256 among TokenHashes); dashboard forms also take a session
// made with one, or a trusted reverse proxy's user header.
type Auth struct {
	TokenHashes [][32]byte
	ReadToken   bool
	// ProxyHeader names a header a trusted reverse proxy sets to the
	// authenticated user (e.g. X-Forwarded-User). It is believed only from
	// TrustedProxies, and ignored when there are none.
	ProxyHeader    string
	TrustedProxies []netip.Prefix
	// SecureCookie marks the session cookie Secure: set it when people reach
	// the server over https.
	SecureCookie bool

	once      sync.Once
	key       []byte
	mu        sync.Mutex
	sessions  map[string]time.Time     // session id -> expiry
	signIns   map[string]*rate.Limiter // client address -> its sign-in attempts
	lastSweep time.Time                // when signIns was last swept
	now       func() time.Time         // time.Now; tests move it
}

// HashToken is how tokens are configured by hash: hex SHA-256.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

const sessionCookie = "trueline_session"

func (a *Auth) init() {
	a.once.Do(func() {
		a.key = make([]byte, 32)
		rand.Read(a.key)
		a.sessions = map[string]time.Time{}
		a.signIns = map[string]*rate.Limiter{}
		if a.now == nil {
			a.now = time.Now
		}
	})
}

const sessionLifetime = 12 * time.Hour

// Sign-in attempts per client address: a burst of signInBurst, then one
// every signInEvery, so at most five a minute go on guessing tokens.
const (
	signInBurst = 5
	signInEvery = time.Minute / signInBurst
)

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
	if a.hasToken(r) {
		return "token"
	}
	if a.ProxyHeader != "" && a.fromTrustedProxy(r) {
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

// canWriteAPI admits API writes by bearer token only: a browser sends
// cookies and a proxy's credentials by itself, a bearer token never.
func (a *Auth) canWriteAPI(r *http.Request) bool { return a.hasToken(r) }

func (a *Auth) hasToken(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && a.validToken(tok)
}

// peer is the address the request came from.
func peer(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

func (a *Auth) trusted(ip netip.Addr) bool {
	for _, p := range a.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (a *Auth) fromTrustedProxy(r *http.Request) bool {
	ip, ok := peer(r)
	return ok && a.trusted(ip)
}

// clientAddr is the address sign-in attempts are counted against: the peer,
// or behind trusted proxies the nearest X-Forwarded-For address that is not
// one of them (the ones further left are whatever the client claimed).
func (a *Auth) clientAddr(r *http.Request) string {
	ip, ok := peer(r)
	if !ok {
		return r.RemoteAddr
	}
	if !a.trusted(ip) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if hop = hop.Unmap(); !a.trusted(hop) {
			return hop.String()
		}
	}
	return ip.String()
}

// allowSignIn takes one sign-in attempt from addr, or says how long until
// the next is allowed.
func (a *Auth) allowSignIn(addr string) (time.Duration, bool) {
	a.init()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	// A limiter whose bucket is full again is as good as a new one: drop
	// those now and then so the map holds only recent clients.
	if now.Sub(a.lastSweep) >= time.Minute {
		for k, l := range a.signIns {
			if l.TokensAt(now) >= signInBurst {
				delete(a.signIns, k)
			}
		}
		a.lastSweep = now
	}
	l, ok := a.signIns[addr]
	if !ok {
		l = rate.NewLimiter(rate.Every(signInEvery), signInBurst)
		a.signIns[addr] = l
	}
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

func (a *Auth) validSession(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.sessions[id]
	if ok && !a.now().Before(exp) {
		delete(a.sessions, id)
		return false
	}
	return ok
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
	now := a.now()
	// Expired sessions go here, so the map holds at most the sessions of
	// the last lifetime even if their cookies never come back.
	for k, exp := range a.sessions {
		if !now.Before(exp) {
			delete(a.sessions, k)
		}
	}
	a.sessions[id] = now.Add(sessionLifetime)
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: a.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionLifetime / time.Second)})
	return true
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: a.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
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
