//! End-to-end tests of auth-svc: the real server on an ephemeral port, a temporary SQLite
//! database (or PostgreSQL/MariaDB with `AUTH_TEST_DATABASE_URL`, Redis with
//! `AUTH_TEST_REDIS_URL`), and the generated gRPC client. One binary, a module per feature;
//! every test starts its servers with [`helpers::spawn_app`] or one of its variants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The harness.
// `spawn_app()` and `TestApp`, test databases, the env switches, token and JWT recipes.
mod helpers;
// A TCP proxy the fault tests cut between a server and its database or Redis.
mod proxy;

// One module per RPC.
// The signed-in user's own sessions and account: ListSessions to DeleteAccount.
mod accounts;
// The operators' calls: ListUsers to RevokeUserSessions, disabled and deleted accounts.
mod admin;
// ValidateToken: the authoritative answer about an access token.
mod introspection;
// Login: the token pair and its claims, one answer for a wrong password and an unknown user.
mod login;
// Refresh: rotation, the reuse interval, reuse detection.
mod refresh;
// Register: input rules, taken names, concurrent registrations of one name.
mod register;
// SetUserRole and the operator's first admin.
mod roles;
// gRPC over TLS and mutual TLS, certificates rotated live.
mod tls;
// The second factor: TOTP enrolment, VerifyMfa, recovery codes, DisableTotp, ResetMfa.
mod second_factor;
// Service accounts: CreateClient to DeleteClient, ClientCredentials, IntrospectToken, RevokeToken.
mod service_clients;
// GetUserInfo and the bearer header rules.
mod user_info;

// Promises that cross RPCs.
// Abuse limits under attack: guesses at once, floods, the hashing queue, signups.
mod abuse;
// Forged and misused tokens.
mod attacks;
// A hostile client's and a careless operator's tries at the service-account code.
mod client_attacks;
// A hostile client's tries at Refresh: one token at once on two replicas, races with every call
// that ends a session, lifetimes' edge, forged tokens, pre-migration rows, a cut database.
mod refresh_attacks;
// A hostile client's tries at the second factor: replays, guesses, forged challenges, races.
mod mfa_attacks;
// Audit events: the records a scenario writes, none with a secret, and their counter.
mod audit;
// Signing keys: each algorithm through the gateway's JWKS, a key rotation, `auth-verifier`.
mod keys;
// No user enumeration by timing; consistent sessions under concurrent calls.
mod pressure;
// Session lifetime and the purge of ended sessions.
mod retention;
// Usernames by RFC 8265, and no password hash in the user cache.
mod usernames;

// Several replicas and the stores.
// The account and session queries of the model on each database, and the indexes behind them.
mod account_queries;
// The service-account queries of the model on each database, and the migration of their table.
mod client_queries;
// Redis and the database cut mid-traffic, then restored.
mod faults;
// The defences (disabling, password changes, service accounts, the second factor) under cut,
// flushed and restored stores.
mod store_faults;
// The second factor's queries on each database: once-only steps, codes and challenges under races.
mod mfa_queries;
// Two replicas on one database and one Redis behave as one service.
mod replicas;
// The revocation promise: a logout reaches every replica within the bound, whatever Redis does.
mod revocation;
// The cache, throttle and revocation list as the service uses them.
mod shared_state;
// One contract test per store trait, run by the in-process and the Redis implementation.
mod store_contracts;
// Account changes reach every replica's user cache within the same bound.
mod user_sync;

// The process around the service.
// The Kubernetes manifests and the Dockerfile against what the binaries accept.
mod deploy;
// The README's layout section against the folders of the tree.
mod layout;
// The `/metrics` counters after a scripted scenario.
mod metrics;
// The alerts and dashboard of deploy/k8s/components/monitoring against the exported metrics.
mod monitoring;
// Health, reflection, message limits, graceful shutdown.
mod server;
// OpenTelemetry traces from a REST caller through the gateway into auth-svc, at a real receiver.
mod traces;
