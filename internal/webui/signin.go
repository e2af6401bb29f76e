package webui

import (
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"

	"hve/internal/adminauth"
	"hve/internal/password"
	"hve/internal/store"
)

// signInView is the data of the sign-in form.
type signInView struct {
	// CSRF protects the form itself: a site that made the browser sign in
	// as the attacker's admin user could watch what the victim types.
	CSRF  string
	Name  string
	Error string
}

// showSignIn renders the sign-in form with a fresh login CSRF cookie.
func (u *UI) showSignIn(w http.ResponseWriter, r *http.Request, status int, name, msg string) {
	// Keep a token the browser has: it may load the form in two tabs, or
	// fetch /favicon.ico in between, and the first form must still work.
	var token string
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 40 && status != http.StatusForbidden {
		token = c.Value
	} else if token, _, err = adminauth.NewSessionID(); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	u.setCookie(w, r, loginCookie, token, 600)
	u.render(w, status, "signin", &view{Title: "Sign in", Data: signInView{CSRF: token, Name: name, Error: msg}})
}

// clientIP is the request's source address without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// signInFailed is the one message of every refused sign-in: it does not say
// whether the name, the password, the code or the throttle refused it.
const signInFailed = "Sign-in failed: wrong name, password or code, or too many attempts. Try again in a few minutes."

func (u *UI) signIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		u.showSignIn(w, r, http.StatusBadRequest, "", "The form could not be read.")
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 {
		u.showSignIn(w, r, http.StatusForbidden, "", "The sign-in form expired. Please sign in again.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw := r.PostFormValue("password")
	code := r.PostFormValue("totp")
	ip := clientIP(r)
	// The attempt counts (on every node) before the password is checked,
	// and stops counting if it succeeds.
	attempt, allowed, err := u.throttle.Begin(r.Context(), name, ip)
	if err != nil {
		u.cfg.Log.Error("admin sign-in: counting the attempt", "user", name, "client_ip", ip, "err", err)
		u.showSignIn(w, r, http.StatusServiceUnavailable, name, "Sign-in is not available right now. Try again in a few minutes.")
		return
	}
	if !allowed {
		u.cfg.Log.Warn("admin sign-in throttled", "user", name, "client_ip", ip)
		u.showSignIn(w, r, http.StatusTooManyRequests, name, signInFailed)
		return
	}
	user, ok := u.checkCredentials(r, name, pw, code)
	if !ok {
		u.cfg.Log.Warn("admin sign-in failed", "user", name, "client_ip", ip)
		u.showSignIn(w, r, http.StatusUnauthorized, name, signInFailed)
		return
	}
	if err := u.throttle.Succeeded(r.Context(), attempt); err != nil {
		u.cfg.Log.Warn("admin sign-in: clearing the failures", "user", user.Name, "err", err)
	}
	id, csrf, err := adminauth.NewSessionID()
	if err != nil {
		u.fail(w, r, err)
		return
	}
	now := u.cfg.Now().UTC()
	s := adminauth.Session{IDHash: adminauth.HashToken(id), UserID: user.ID, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(u.cfg.SessionLifetime), LastSeen: now}
	if err := u.cfg.Store.CreateAdminSession(r.Context(), s); err != nil {
		u.fail(w, r, err)
		return
	}
	if err := u.cfg.Store.PruneAdminSessions(r.Context(), now); err != nil {
		u.cfg.Log.Warn("pruning expired admin sessions", "err", err)
	}
	u.cfg.Log.Info("admin signed in", "user", user.Name, "role", user.Role, "client_ip", ip)
	u.setCookie(w, r, loginCookie, "", -1)
	u.setCookie(w, r, sessionCookie, id, int(u.cfg.SessionLifetime.Seconds()))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// checkCredentials verifies name, password and, for users with a second
// factor, the TOTP code. An unknown name costs the same hash as a wrong
// password.
func (u *UI) checkCredentials(r *http.Request, name, pw, code string) (adminauth.User, bool) {
	user, err := u.cfg.Store.AdminUserByName(r.Context(), name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			u.cfg.Log.Error("admin sign-in: reading the user", "err", err)
		}
		password.Verify(u.dummyHash, pw)
		return user, false
	}
	if password.Verify(user.PasswordHash, pw) != nil || !user.Enabled {
		return user, false
	}
	if !user.TOTP {
		return user, true
	}
	step, ok := adminauth.VerifyTOTP(user.TOTPSecret, code, u.cfg.Now(), user.TOTPLastStep)
	if !ok {
		return user, false
	}
	// Remember the step so that the same code cannot be replayed.
	user.TOTPLastStep = step
	if _, err := u.cfg.Store.UpdateAdminUser(r.Context(), user); err != nil {
		u.cfg.Log.Error("admin sign-in: recording the TOTP step", "err", err)
		return user, false
	}
	return user, true
}

func (u *UI) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := u.cfg.Store.RemoveAdminSession(r.Context(), s.IDHash); err != nil {
		u.cfg.Log.Warn("ending an admin session", "err", err)
	}
	u.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
