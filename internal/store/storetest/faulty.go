package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mandate-dev/mandate/internal/store"
)

// methods returns the names Fail accepts: every store.Store method but Close.
func methods() []string {
	return []string{
		"CreateUser", "GetUser", "ListUsers", "UpdateUser", "DeleteUser",
		"CreateAgent", "GetAgent", "ListAgents", "UpdateAgent", "DeleteAgent",
		"CreateDelegation", "GetDelegation", "ListDelegations", "UpdateDelegation",
		"GetToken", "RevokeToken", "Commit",
		"CreateKey", "ListKeys", "UpdateKey",
		"QueryEvents", "TallyEvents", "EventsAfter",
		"AddCheckpoint", "Checkpoints", "LatestCheckpoint", "CheckpointKey",
		"UseNonce", "NotBefore", "AdvanceNotBefore",
		"ListRevocations", "RevocationSeq", "CollectRevocations",
		"Sweep", "ArchivedLog", "MarkArchived", "DeleteArchivedEvents",
		"CreateCode", "RedeemCode", "CreateRefresh", "GetRefresh", "RotateRefresh",
		"CreateSession", "GetSession", "TouchSession", "DeleteSession", "DeleteSessionsOf",
		"PutPending", "GetPending", "TakePending",
		"PutUpstreamGrant", "DueUpstreamGrants", "TouchUpstreamGrant", "DeleteUpstreamGrant", "UpstreamGrantKey",
		"Generation", "Ping",
	}
}

// Faulty is a store.Store that passes calls to another store unless a test
// has told it to fail them. A failed call returns before it reaches the
// wrapped store, so it changes nothing. Close is always passed on. Faulty
// is safe for concurrent use; faults can be set and healed while calls run.
type Faulty struct {
	inner store.Store

	mu     sync.Mutex
	all    error            // when set, every call fails with it
	failed map[string]error // per-method faults
	calls  map[string]int
}

var _ store.Store = (*Faulty)(nil)

// NewFaulty wraps s; it fails nothing until told to.
func NewFaulty(s store.Store) *Faulty {
	return &Faulty{inner: s, failed: map[string]error{}, calls: map[string]int{}}
}

// FailAll makes every call but Close fail with err, or, when err is nil,
// with an error that wraps store.ErrUnavailable.
func (f *Faulty) FailAll(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = orUnavailable(err)
}

// Fail makes calls of the named method (for example "Commit") fail with
// err, or, when err is nil, with an error that wraps store.ErrUnavailable.
// It panics on a name that is not a store.Store method, so that a typo
// cannot leave a test passing without its fault.
func (f *Faulty) Fail(method string, err error) {
	if !slices.Contains(methods(), method) {
		panic(fmt.Sprintf("storetest: Fail(%q): not a store.Store method", method))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[method] = orUnavailable(err)
}

// Heal removes every fault.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.all = nil
	clear(f.failed)
}

// Calls returns how many times the named method was called, failed or not.
func (f *Faulty) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func orUnavailable(err error) error {
	if err == nil {
		return fmt.Errorf("storetest: injected fault: %w", store.ErrUnavailable)
	}
	return err
}

// fault counts the call and returns the fault to fail it with, if any.
func (f *Faulty) fault(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	err := f.all
	if e, ok := f.failed[method]; ok {
		err = e
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("storetest: %s: %w", method, err)
}

// faultOf is the fault set on the named method, if any, without counting
// a call of it.
func (f *Faulty) faultOf(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.failed[method]; ok {
		return fmt.Errorf("storetest: %s: %w", method, err)
	}
	return nil
}

// CreateUser implements store.Users.
func (f *Faulty) CreateUser(ctx context.Context, u store.User, events ...store.Event) error {
	if err := f.fault("CreateUser"); err != nil {
		return err
	}
	return f.inner.CreateUser(ctx, u, events...)
}

// GetUser implements store.Users.
func (f *Faulty) GetUser(ctx context.Context, id string) (store.User, error) {
	if err := f.fault("GetUser"); err != nil {
		return store.User{}, err
	}
	return f.inner.GetUser(ctx, id)
}

// ListUsers implements store.Users.
func (f *Faulty) ListUsers(ctx context.Context) ([]store.User, error) {
	if err := f.fault("ListUsers"); err != nil {
		return nil, err
	}
	return f.inner.ListUsers(ctx)
}

// UpdateUser implements store.Users.
func (f *Faulty) UpdateUser(ctx context.Context, id string, fn func(store.User) (store.User, error), events ...store.Event) (store.User, error) {
	if err := f.fault("UpdateUser"); err != nil {
		return store.User{}, err
	}
	return f.inner.UpdateUser(ctx, id, fn, events...)
}

// DeleteUser implements store.Users.
func (f *Faulty) DeleteUser(ctx context.Context, id string, events ...store.Event) error {
	if err := f.fault("DeleteUser"); err != nil {
		return err
	}
	return f.inner.DeleteUser(ctx, id, events...)
}

// CreateAgent implements store.Agents.
func (f *Faulty) CreateAgent(ctx context.Context, a store.Agent, events ...store.Event) error {
	if err := f.fault("CreateAgent"); err != nil {
		return err
	}
	return f.inner.CreateAgent(ctx, a, events...)
}

// GetAgent implements store.Agents.
func (f *Faulty) GetAgent(ctx context.Context, id string) (store.Agent, error) {
	if err := f.fault("GetAgent"); err != nil {
		return store.Agent{}, err
	}
	return f.inner.GetAgent(ctx, id)
}

// ListAgents implements store.Agents.
func (f *Faulty) ListAgents(ctx context.Context) ([]store.Agent, error) {
	if err := f.fault("ListAgents"); err != nil {
		return nil, err
	}
	return f.inner.ListAgents(ctx)
}

// UpdateAgent implements store.Agents.
func (f *Faulty) UpdateAgent(ctx context.Context, id string, fn func(store.Agent) (store.Agent, error), events ...store.Event) (store.Agent, error) {
	if err := f.fault("UpdateAgent"); err != nil {
		return store.Agent{}, err
	}
	return f.inner.UpdateAgent(ctx, id, fn, events...)
}

// DeleteAgent implements store.Agents.
func (f *Faulty) DeleteAgent(ctx context.Context, id string, events ...store.Event) error {
	if err := f.fault("DeleteAgent"); err != nil {
		return err
	}
	return f.inner.DeleteAgent(ctx, id, events...)
}

// CreateDelegation implements store.Delegations.
func (f *Faulty) CreateDelegation(ctx context.Context, d store.Delegation, events ...store.Event) error {
	if err := f.fault("CreateDelegation"); err != nil {
		return err
	}
	return f.inner.CreateDelegation(ctx, d, events...)
}

// GetDelegation implements store.Delegations.
func (f *Faulty) GetDelegation(ctx context.Context, id string) (store.Delegation, error) {
	if err := f.fault("GetDelegation"); err != nil {
		return store.Delegation{}, err
	}
	return f.inner.GetDelegation(ctx, id)
}

// ListDelegations implements store.Delegations.
func (f *Faulty) ListDelegations(ctx context.Context, filter store.DelegationFilter) ([]store.Delegation, error) {
	if err := f.fault("ListDelegations"); err != nil {
		return nil, err
	}
	return f.inner.ListDelegations(ctx, filter)
}

// UpdateDelegation implements store.Delegations.
func (f *Faulty) UpdateDelegation(ctx context.Context, id string, fn func(store.Delegation) (store.Delegation, error), events ...store.Event) (store.Delegation, error) {
	if err := f.fault("UpdateDelegation"); err != nil {
		return store.Delegation{}, err
	}
	return f.inner.UpdateDelegation(ctx, id, fn, events...)
}

// GetToken implements store.Tokens.
func (f *Faulty) GetToken(ctx context.Context, jti string) (store.IssuedToken, error) {
	if err := f.fault("GetToken"); err != nil {
		return store.IssuedToken{}, err
	}
	return f.inner.GetToken(ctx, jti)
}

// RevokeToken implements store.Tokens.
func (f *Faulty) RevokeToken(ctx context.Context, jti string, at time.Time, events ...store.Event) error {
	if err := f.fault("RevokeToken"); err != nil {
		return err
	}
	return f.inner.RevokeToken(ctx, jti, at, events...)
}

// Commit implements store.Tokens.
func (f *Faulty) Commit(ctx context.Context, b store.Batch) error {
	if err := f.fault("Commit"); err != nil {
		return err
	}
	return f.inner.Commit(ctx, b)
}

// CreateKey implements store.Keys.
func (f *Faulty) CreateKey(ctx context.Context, k store.Key, events ...store.Event) error {
	if err := f.fault("CreateKey"); err != nil {
		return err
	}
	return f.inner.CreateKey(ctx, k, events...)
}

// ListKeys implements store.Keys.
func (f *Faulty) ListKeys(ctx context.Context) ([]store.Key, error) {
	if err := f.fault("ListKeys"); err != nil {
		return nil, err
	}
	return f.inner.ListKeys(ctx)
}

// UpdateKey implements store.Keys.
func (f *Faulty) UpdateKey(ctx context.Context, kid string, fn func(store.Key) (store.Key, error), events ...store.Event) (store.Key, error) {
	if err := f.fault("UpdateKey"); err != nil {
		return store.Key{}, err
	}
	return f.inner.UpdateKey(ctx, kid, fn, events...)
}

// QueryEvents implements store.AuditLog.
func (f *Faulty) QueryEvents(ctx context.Context, filter store.EventFilter) ([]store.Event, error) {
	if err := f.fault("QueryEvents"); err != nil {
		return nil, err
	}
	return f.inner.QueryEvents(ctx, filter)
}

// TallyEvents implements store.AuditLog. It counts the records
// QueryEvents reads, so a fault set on QueryEvents (a log that cannot be
// read) fails it too, without counting a QueryEvents call.
func (f *Faulty) TallyEvents(ctx context.Context, filter store.TallyFilter) ([]store.EventTally, error) {
	if err := f.fault("TallyEvents"); err != nil {
		return nil, err
	}
	if err := f.faultOf("QueryEvents"); err != nil {
		return nil, err
	}
	return f.inner.TallyEvents(ctx, filter)
}

// EventsAfter implements store.AuditLog.
func (f *Faulty) EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]store.Event, error) {
	if err := f.fault("EventsAfter"); err != nil {
		return nil, err
	}
	return f.inner.EventsAfter(ctx, afterSeq, limit)
}

// AddCheckpoint implements store.Checkpoints.
func (f *Faulty) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := f.fault("AddCheckpoint"); err != nil {
		return err
	}
	return f.inner.AddCheckpoint(ctx, c)
}

// Checkpoints implements store.Checkpoints.
func (f *Faulty) Checkpoints(ctx context.Context, after int64, limit int) ([]store.Checkpoint, error) {
	if err := f.fault("Checkpoints"); err != nil {
		return nil, err
	}
	return f.inner.Checkpoints(ctx, after, limit)
}

// LatestCheckpoint implements store.Checkpoints.
func (f *Faulty) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	if err := f.fault("LatestCheckpoint"); err != nil {
		return store.Checkpoint{}, err
	}
	return f.inner.LatestCheckpoint(ctx)
}

// CheckpointKey implements store.Checkpoints. A failed call does not call
// create.
func (f *Faulty) CheckpointKey(ctx context.Context, create func() (string, error)) (string, error) {
	if err := f.fault("CheckpointKey"); err != nil {
		return "", err
	}
	return f.inner.CheckpointKey(ctx, create)
}

// UseNonce implements store.Nonces.
func (f *Faulty) UseNonce(ctx context.Context, namespace, id string, expires time.Time) error {
	if err := f.fault("UseNonce"); err != nil {
		return err
	}
	return f.inner.UseNonce(ctx, namespace, id, expires)
}

// NotBefore implements store.NotBefore.
func (f *Faulty) NotBefore(ctx context.Context) (time.Time, error) {
	if err := f.fault("NotBefore"); err != nil {
		return time.Time{}, err
	}
	return f.inner.NotBefore(ctx)
}

// AdvanceNotBefore implements store.NotBefore.
func (f *Faulty) AdvanceNotBefore(ctx context.Context, t time.Time, events ...store.Event) (time.Time, error) {
	if err := f.fault("AdvanceNotBefore"); err != nil {
		return time.Time{}, err
	}
	return f.inner.AdvanceNotBefore(ctx, t, events...)
}

// ListRevocations implements store.Revocations.
func (f *Faulty) ListRevocations(ctx context.Context, after int64, limit int) ([]store.Revocation, error) {
	if err := f.fault("ListRevocations"); err != nil {
		return nil, err
	}
	return f.inner.ListRevocations(ctx, after, limit)
}

// RevocationSeq implements store.Revocations.
func (f *Faulty) RevocationSeq(ctx context.Context) (int64, error) {
	if err := f.fault("RevocationSeq"); err != nil {
		return 0, err
	}
	return f.inner.RevocationSeq(ctx)
}

// Sweep implements store.Sweeper.
func (f *Faulty) Sweep(ctx context.Context, c store.SweepCutoffs, limit int) (store.Swept, error) {
	if err := f.fault("Sweep"); err != nil {
		return store.Swept{}, err
	}
	return f.inner.Sweep(ctx, c, limit)
}

// CollectRevocations implements store.Revocations.
func (f *Faulty) CollectRevocations(ctx context.Context, tokensBefore, othersBefore time.Time) (int, error) {
	if err := f.fault("CollectRevocations"); err != nil {
		return 0, err
	}
	return f.inner.CollectRevocations(ctx, tokensBefore, othersBefore)
}

// ArchivedLog implements store.AuditArchive.
func (f *Faulty) ArchivedLog(ctx context.Context) (store.ArchivedLog, error) {
	if err := f.fault("ArchivedLog"); err != nil {
		return store.ArchivedLog{}, err
	}
	return f.inner.ArchivedLog(ctx)
}

// MarkArchived implements store.AuditArchive.
func (f *Faulty) MarkArchived(ctx context.Context, from int64, a store.ArchivedLog) error {
	if err := f.fault("MarkArchived"); err != nil {
		return err
	}
	return f.inner.MarkArchived(ctx, from, a)
}

// DeleteArchivedEvents implements store.AuditArchive.
func (f *Faulty) DeleteArchivedEvents(ctx context.Context, through int64, limit int) (int, error) {
	if err := f.fault("DeleteArchivedEvents"); err != nil {
		return 0, err
	}
	return f.inner.DeleteArchivedEvents(ctx, through, limit)
}

// LeaseArchive implements store.AuditArchive.
func (f *Faulty) LeaseArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	if err := f.fault("LeaseArchive"); err != nil {
		return false, err
	}
	return f.inner.LeaseArchive(ctx, holder, ttl)
}

// RenewArchive implements store.AuditArchive.
func (f *Faulty) RenewArchive(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	if err := f.fault("RenewArchive"); err != nil {
		return false, err
	}
	return f.inner.RenewArchive(ctx, holder, ttl)
}

// ReleaseArchive implements store.AuditArchive.
func (f *Faulty) ReleaseArchive(ctx context.Context, holder string) error {
	if err := f.fault("ReleaseArchive"); err != nil {
		return err
	}
	return f.inner.ReleaseArchive(ctx, holder)
}

// CreateCode implements store.SignIn.
func (f *Faulty) CreateCode(ctx context.Context, c store.AuthCode, events ...store.Event) error {
	if err := f.fault("CreateCode"); err != nil {
		return err
	}
	return f.inner.CreateCode(ctx, c, events...)
}

// RedeemCode implements store.SignIn.
func (f *Faulty) RedeemCode(ctx context.Context, hash []byte, at time.Time) (store.AuthCode, error) {
	if err := f.fault("RedeemCode"); err != nil {
		return store.AuthCode{}, err
	}
	return f.inner.RedeemCode(ctx, hash, at)
}

// CreateRefresh implements store.SignIn.
func (f *Faulty) CreateRefresh(ctx context.Context, rt store.RefreshToken, events ...store.Event) error {
	if err := f.fault("CreateRefresh"); err != nil {
		return err
	}
	return f.inner.CreateRefresh(ctx, rt, events...)
}

// GetRefresh implements store.SignIn.
func (f *Faulty) GetRefresh(ctx context.Context, hash []byte) (store.RefreshToken, error) {
	if err := f.fault("GetRefresh"); err != nil {
		return store.RefreshToken{}, err
	}
	return f.inner.GetRefresh(ctx, hash)
}

// RotateRefresh implements store.SignIn.
func (f *Faulty) RotateRefresh(ctx context.Context, hash []byte, at time.Time, next store.RefreshToken) (store.RefreshToken, error) {
	if err := f.fault("RotateRefresh"); err != nil {
		return store.RefreshToken{}, err
	}
	return f.inner.RotateRefresh(ctx, hash, at, next)
}

// CreateSession implements store.SignIn.
func (f *Faulty) CreateSession(ctx context.Context, se store.Session, events ...store.Event) error {
	if err := f.fault("CreateSession"); err != nil {
		return err
	}
	return f.inner.CreateSession(ctx, se, events...)
}

// GetSession implements store.SignIn.
func (f *Faulty) GetSession(ctx context.Context, hash []byte) (store.Session, error) {
	if err := f.fault("GetSession"); err != nil {
		return store.Session{}, err
	}
	return f.inner.GetSession(ctx, hash)
}

// TouchSession implements store.SignIn.
func (f *Faulty) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if err := f.fault("TouchSession"); err != nil {
		return err
	}
	return f.inner.TouchSession(ctx, hash, at)
}

// DeleteSession implements store.SignIn.
func (f *Faulty) DeleteSession(ctx context.Context, hash []byte, events ...store.Event) error {
	if err := f.fault("DeleteSession"); err != nil {
		return err
	}
	return f.inner.DeleteSession(ctx, hash, events...)
}

// DeleteSessionsOf implements store.SignIn.
func (f *Faulty) DeleteSessionsOf(ctx context.Context, subject string, events ...store.Event) (int, error) {
	if err := f.fault("DeleteSessionsOf"); err != nil {
		return 0, err
	}
	return f.inner.DeleteSessionsOf(ctx, subject, events...)
}

// PutPending implements store.SignIn.
func (f *Faulty) PutPending(ctx context.Context, p store.Pending) error {
	if err := f.fault("PutPending"); err != nil {
		return err
	}
	return f.inner.PutPending(ctx, p)
}

// GetPending implements store.SignIn.
func (f *Faulty) GetPending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	if err := f.fault("GetPending"); err != nil {
		return store.Pending{}, err
	}
	return f.inner.GetPending(ctx, kind, hash)
}

// TakePending implements store.SignIn.
func (f *Faulty) TakePending(ctx context.Context, kind string, hash []byte) (store.Pending, error) {
	if err := f.fault("TakePending"); err != nil {
		return store.Pending{}, err
	}
	return f.inner.TakePending(ctx, kind, hash)
}

// Generation implements store.Store.
func (f *Faulty) Generation(ctx context.Context) (int64, error) {
	if err := f.fault("Generation"); err != nil {
		return 0, err
	}
	return f.inner.Generation(ctx)
}

// Ping implements store.Store.
func (f *Faulty) Ping(ctx context.Context) error {
	if err := f.fault("Ping"); err != nil {
		return err
	}
	return f.inner.Ping(ctx)
}

// Close closes the wrapped store; it never fails by injection.
func (f *Faulty) Close() error {
	return f.inner.Close()
}

// PutUpstreamGrant implements store.UpstreamGrants.
func (f *Faulty) PutUpstreamGrant(ctx context.Context, g store.UpstreamGrant) error {
	if err := f.fault("PutUpstreamGrant"); err != nil {
		return err
	}
	return f.inner.PutUpstreamGrant(ctx, g)
}

// DueUpstreamGrants implements store.UpstreamGrants.
func (f *Faulty) DueUpstreamGrants(ctx context.Context, provider string, before time.Time, limit int) ([]store.UpstreamGrant, error) {
	if err := f.fault("DueUpstreamGrants"); err != nil {
		return nil, err
	}
	return f.inner.DueUpstreamGrants(ctx, provider, before, limit)
}

// TouchUpstreamGrant implements store.UpstreamGrants.
func (f *Faulty) TouchUpstreamGrant(ctx context.Context, subject, provider string, was time.Time, sealed []byte, at time.Time) error {
	if err := f.fault("TouchUpstreamGrant"); err != nil {
		return err
	}
	return f.inner.TouchUpstreamGrant(ctx, subject, provider, was, sealed, at)
}

// DeleteUpstreamGrant implements store.UpstreamGrants.
func (f *Faulty) DeleteUpstreamGrant(ctx context.Context, subject, provider string, events ...store.Event) error {
	if err := f.fault("DeleteUpstreamGrant"); err != nil {
		return err
	}
	return f.inner.DeleteUpstreamGrant(ctx, subject, provider, events...)
}

// UpstreamGrantKey implements store.UpstreamGrants.
func (f *Faulty) UpstreamGrantKey(ctx context.Context, create func() ([]byte, error)) ([]byte, error) {
	if err := f.fault("UpstreamGrantKey"); err != nil {
		return nil, err
	}
	return f.inner.UpstreamGrantKey(ctx, create)
}
