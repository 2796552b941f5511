// Package webhook tells customers and the operator what happens to API
// tokens, as signed HTTP callbacks following the Standard Webhooks
// specification (https://www.standardwebhooks.com): each message carries
// webhook-id, webhook-timestamp and webhook-signature
// ("v1,<base64 HMAC-SHA256(key, id.timestamp.body)>"), its endpoint's
// secret written "whsec_<base64 key>".
//
// The parts:
//
//   - Event and its constructors (TokenCreated, TokenRevoked, TokenLeaked,
//     …) build the payloads; they never hold a secret.
//   - Registry keeps the endpoints: a project's, and the operator's
//     (ProjectID 0, every project's events), each with a URL, a secret and
//     an event filter. RedisRegistry is shared by replicas; FileRegistry is
//     the embedded default.
//   - Publisher turns an event into one Delivery per endpoint that wants
//     it and puts them on a Queue, once per event (Once deduplicates events
//     that several replicas may raise).
//   - Queue holds deliveries durably until delivered or dead. RedisQueue is
//     a stream with a consumer group, so that each delivery goes to one
//     replica; FileQueue is the embedded, single-process default.
//   - Dispatcher takes deliveries off a Queue, signs and posts them, and
//     retries failures with exponential backoff and jitter until
//     MaxAttempts, after which a delivery is dead (kept, replayable).
//
// Delivery is at least once: a receiver may see a message twice (a replica
// that stalls past the visibility timeout, a response lost on the way) and
// should drop repeats by webhook-id, which stays the same across retries
// and replays.
package webhook
