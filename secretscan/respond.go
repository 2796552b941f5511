package secretscan

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Refusal codes, in the body's "code" and the X-Tsw-Error-Code header.
const (
	CodeSignatureMissing     = "signature_missing"
	CodeSignatureMalformed   = "signature_malformed"
	CodeSignatureKeyUnknown  = "signature_key_unknown"
	CodeSignatureInvalid     = "signature_invalid"
	CodeKeysUnavailable      = "signature_keys_unavailable"
	CodeBodyTooLarge         = "body_too_large"
	CodeInvalidReport        = "invalid_report"
	CodeInvalidRequest       = "invalid_request"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeRateLimited          = "rate_limited"
	CodeBusy                 = "busy"
	CodeStoreUnavailable     = "store_unavailable"
	CodeReportTimeout        = "report_timeout"
	CodeMethodNotAllowed     = "method_not_allowed"
)

// refusal is a refusal code's status and message.
type refusal struct {
	status  int
	message string
}

var refusals = map[string]refusal{
	CodeSignatureMissing:     {http.StatusUnauthorized, "The report is not signed: send Github-Public-Key-Identifier and Github-Public-Key-Signature."},
	CodeSignatureMalformed:   {http.StatusBadRequest, "The report's signature is not base64 of an ASN.1 ECDSA signature."},
	CodeSignatureKeyUnknown:  {http.StatusUnauthorized, "The report is signed with a key that is not among the published keys."},
	CodeSignatureInvalid:     {http.StatusUnauthorized, "The report's signature does not verify."},
	CodeKeysUnavailable:      {http.StatusServiceUnavailable, "The public keys to verify the report cannot be loaded: retry later."},
	CodeBodyTooLarge:         {http.StatusRequestEntityTooLarge, "The request body is too large."},
	CodeInvalidReport:        {http.StatusBadRequest, "The report is not a JSON array of matches with a \"token\" each."},
	CodeInvalidRequest:       {http.StatusBadRequest, `Send {"credentials": ["tsw_…:tswsk_…"]} (or {"credential": "…"}).`},
	CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, "Send the body as application/json."},
	CodeRateLimited:          {http.StatusTooManyRequests, "Too many requests from this address: retry after the time in Retry-After."},
	CodeBusy:                 {http.StatusServiceUnavailable, "Too many revocations are queued: retry after the time in Retry-After."},
	CodeStoreUnavailable:     {http.StatusServiceUnavailable, "The token store cannot answer: retry later (revoking is idempotent)."},
	CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, "Use POST."},
	CodeReportTimeout:        {http.StatusServiceUnavailable, "The report is still being decided: send it again (revoking is idempotent)."},
}

// envelope is the API's answer shape.
type envelope struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
}

// refuse answers code, with Retry-After when retryAfter is set, and tells
// the observer.
func refuse(w http.ResponseWriter, obs Observer, code string, retryAfter time.Duration) {
	obs.Refused(code)
	r := refusals[code]
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("X-Tsw-Error-Code", code)
	writeJSON(w, r.status, envelope{Success: false, Message: r.message, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
