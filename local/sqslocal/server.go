// Package sqslocal is an in-memory, SQS-compatible queue server for the local
// runtime and tests. It speaks the AWS JSON 1.0 protocol that
// aws-sdk-go-v2/service/sqs uses (X-Amz-Target: AmazonSQS.<Op>) and implements
// what Streamer needs: queues with a default visibility timeout and delay, a
// redrive policy to a dead-letter queue, per-message delays up to 15 minutes,
// long polling, visibility changes, batches and approximate counts.
//
// Poller plays Lambda's SQS event source mapping against it.
package sqslocal

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Account and region in the queue URLs and ARNs the server hands out.
const (
	Account = "000000000000"
	Region  = "us-east-1"
)

// SQS limits the server enforces.
const (
	maxDelaySeconds      = 900
	maxVisibilitySeconds = 12 * 60 * 60
	maxWaitSeconds       = 20
	maxBatch             = 10
	maxMessageBytes      = 256 << 10
	defaultVisibility    = 30
	maxRequestBytes      = 2 * maxMessageBytes * maxBatch
)

// Server is the queue server, an http.Handler. It is safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	queues  map[string]*queue
	changed chan struct{} // closed and replaced whenever a message becomes available
	now     func() time.Time
}

// New returns a server with no queues.
func New() *Server {
	return &Server{queues: map[string]*queue{}, changed: make(chan struct{}), now: time.Now}
}

type message struct {
	id, body, md5 string
	sent          time.Time
	visibleAt     time.Time
	receives      int
	receipt       string
}

type queue struct {
	name       string
	attrs      map[string]string
	visibility time.Duration
	delay      time.Duration
	dlq        string // dead-letter queue name, "" without redrive
	maxRecv    int
	msgs       []*message
}

func (q *queue) arn() string { return "arn:aws:sqs:" + Region + ":" + Account + ":" + q.name }

// wakeLocked wakes long polls; s.mu is held.
func (s *Server) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// apiError is an SQS error in the JSON protocol's shape.
type apiError struct {
	status    int
	code      string // the modeled shape name, e.g. QueueDoesNotExist
	queryCode string // the legacy query-protocol code, e.g. AWS.SimpleQueueService.NonExistentQueue
	message   string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// legacyPrefixed are the codes whose query-protocol form carries the
// "AWS.SimpleQueueService." prefix.
var legacyPrefixed = map[string]bool{
	"EmptyBatchRequest": true, "TooManyEntriesInBatchRequest": true, "BatchEntryIdsNotDistinct": true,
	"MessageNotInflight": true, "UnsupportedOperation": true,
}

func badRequest(code, format string, args ...any) *apiError {
	q := code
	if legacyPrefixed[code] {
		q = "AWS.SimpleQueueService." + code
	}
	return &apiError{status: http.StatusBadRequest, code: code, queryCode: q, message: fmt.Sprintf(format, args...)}
}

func invalidParam(format string, args ...any) *apiError {
	return badRequest("InvalidParameterValue", format, args...)
}

func noQueue(name string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "QueueDoesNotExist",
		queryCode: "AWS.SimpleQueueService.NonExistentQueue", message: "The specified queue " + name + " does not exist."}
}

type op func(s *Server, r *http.Request, body []byte) (any, *apiError)

var ops = map[string]op{
	"CreateQueue":             (*Server).createQueue,
	"GetQueueUrl":             (*Server).getQueueURL,
	"SendMessage":             (*Server).sendMessage,
	"SendMessageBatch":        (*Server).sendMessageBatch,
	"ReceiveMessage":          (*Server).receiveMessage,
	"DeleteMessage":           (*Server).deleteMessage,
	"DeleteMessageBatch":      (*Server).deleteMessageBatch,
	"ChangeMessageVisibility": (*Server).changeMessageVisibility,
	"GetQueueAttributes":      (*Server).getQueueAttributes,
	"PurgeQueue":              (*Server).purgeQueue,
}

// ServeHTTP serves one SQS API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	fn := ops[target]
	if r.Method != http.MethodPost || !ok || fn == nil {
		writeError(w, badRequest("UnsupportedOperation", "operation %q is not supported", r.Header.Get("X-Amz-Target")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, badRequest("BatchRequestTooLong", "request body: %v", err))
		return
	}
	out, apiErr := fn(s, r, body)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", e.queryCode+";Sender")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + e.code, "message": e.message})
}

func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("SerializationException", "malformed request: %v", err)
	}
	return nil
}

func queueURL(r *http.Request, name string) string {
	return "http://" + r.Host + "/" + Account + "/" + name
}

// queueLocked finds the queue a QueueUrl names (its last path segment).
func (s *Server) queueLocked(url string) (*queue, *apiError) {
	name := url[strings.LastIndex(url, "/")+1:]
	q, ok := s.queues[name]
	if !ok {
		return nil, noQueue(name)
	}
	return q, nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func seconds(attrs map[string]string, name string, def, max int) (int, *apiError) {
	v, ok := attrs[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, badRequest("InvalidAttributeValue", "invalid value for %s: %q", name, v)
	}
	return n, nil
}

type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     any    `json:"maxReceiveCount"` // a number or a numeric string
}

func (s *Server) createQueue(r *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueName  string
		Attributes map[string]string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.QueueName == "" || len(in.QueueName) > 80 || strings.ContainsAny(in.QueueName, "/: ") {
		return nil, invalidParam("invalid queue name %q", in.QueueName)
	}
	vis, apiErr := seconds(in.Attributes, "VisibilityTimeout", defaultVisibility, maxVisibilitySeconds)
	if apiErr != nil {
		return nil, apiErr
	}
	delay, apiErr := seconds(in.Attributes, "DelaySeconds", 0, maxDelaySeconds)
	if apiErr != nil {
		return nil, apiErr
	}
	q := &queue{name: in.QueueName, attrs: in.Attributes, visibility: time.Duration(vis) * time.Second, delay: time.Duration(delay) * time.Second}
	if rp, ok := in.Attributes["RedrivePolicy"]; ok {
		var p redrivePolicy
		if err := json.Unmarshal([]byte(rp), &p); err != nil {
			return nil, badRequest("InvalidAttributeValue", "invalid RedrivePolicy: %v", err)
		}
		max, err := strconv.Atoi(strings.Trim(fmt.Sprint(p.MaxReceiveCount), `"`))
		if err != nil || max < 1 || max > 1000 {
			return nil, badRequest("InvalidAttributeValue", "invalid RedrivePolicy maxReceiveCount %v", p.MaxReceiveCount)
		}
		q.dlq, q.maxRecv = p.DeadLetterTargetArn[strings.LastIndex(p.DeadLetterTargetArn, ":")+1:], max
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.dlq != "" {
		if _, ok := s.queues[q.dlq]; !ok {
			return nil, badRequest("InvalidAttributeValue", "dead-letter target %s does not exist", q.dlq)
		}
	}
	if old, ok := s.queues[q.name]; ok {
		if !sameAttrs(old.attrs, q.attrs) {
			return nil, badRequest("QueueNameExists", "queue %s exists with other attributes", q.name)
		}
	} else {
		s.queues[q.name] = q
	}
	return map[string]string{"QueueUrl": queueURL(r, q.name)}, nil
}

func sameAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (s *Server) getQueueURL(r *http.Request, body []byte) (any, *apiError) {
	var in struct{ QueueName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.queues[in.QueueName]; !ok {
		return nil, noQueue(in.QueueName)
	}
	return map[string]string{"QueueUrl": queueURL(r, in.QueueName)}, nil
}

type sendEntry struct {
	ID           string `json:"Id"`
	MessageBody  string
	DelaySeconds *int
}

// enqueueLocked validates and stores one message; s.mu is held.
func (s *Server) enqueueLocked(q *queue, e sendEntry) (*message, *apiError) {
	if e.MessageBody == "" {
		return nil, badRequest("MissingParameter", "the request must contain the parameter MessageBody")
	}
	if len(e.MessageBody) > maxMessageBytes {
		return nil, invalidParam("message of %d bytes exceeds the %d-byte limit", len(e.MessageBody), maxMessageBytes)
	}
	delay := q.delay
	if e.DelaySeconds != nil {
		if *e.DelaySeconds < 0 || *e.DelaySeconds > maxDelaySeconds {
			return nil, invalidParam("DelaySeconds %d must be between 0 and %d", *e.DelaySeconds, maxDelaySeconds)
		}
		delay = time.Duration(*e.DelaySeconds) * time.Second
	}
	now := s.now()
	m := &message{id: newID(), body: e.MessageBody, md5: md5Hex(e.MessageBody), sent: now, visibleAt: now.Add(delay)}
	q.msgs = append(q.msgs, m)
	s.wakeLocked()
	return m, nil
}

func (s *Server) sendMessage(_ *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueUrl string
		sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(in.QueueUrl)
	if apiErr != nil {
		return nil, apiErr
	}
	m, apiErr := s.enqueueLocked(q, in.sendEntry)
	if apiErr != nil {
		return nil, apiErr
	}
	return map[string]string{"MessageId": m.id, "MD5OfMessageBody": m.md5}, nil
}

type batchFailure struct {
	ID          string `json:"Id"`
	Code        string
	Message     string
	SenderFault bool
}

func checkBatch(n int, ids []string) *apiError {
	switch {
	case n == 0:
		return badRequest("EmptyBatchRequest", "there should be at least one entry in the request")
	case n > maxBatch:
		return badRequest("TooManyEntriesInBatchRequest", "maximum number of entries per request is %d", maxBatch)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return badRequest("BatchEntryIdsNotDistinct", "id %s repeated", id)
		}
		seen[id] = true
	}
	return nil
}

func (s *Server) sendMessageBatch(_ *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueUrl string
		Entries  []sendEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return runBatch(s, in.QueueUrl, in.Entries, func(e sendEntry) string { return e.ID },
		func(q *queue, e sendEntry) (map[string]string, *apiError) {
			m, apiErr := s.enqueueLocked(q, e)
			if apiErr != nil {
				return nil, apiErr
			}
			return map[string]string{"Id": e.ID, "MessageId": m.id, "MD5OfMessageBody": m.md5}, nil
		})
}

// runBatch validates a *Batch call's entries, then applies do to each under
// the lock: as in SQS, every entry succeeds or fails on its own.
func runBatch[E any](s *Server, queueURL string, entries []E, id func(E) string, do func(*queue, E) (map[string]string, *apiError)) (any, *apiError) {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = id(e)
	}
	if apiErr := checkBatch(len(entries), ids); apiErr != nil {
		return nil, apiErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(queueURL)
	if apiErr != nil {
		return nil, apiErr
	}
	ok := []map[string]string{}
	failed := []batchFailure{}
	for _, e := range entries {
		res, apiErr := do(q, e)
		if apiErr != nil {
			failed = append(failed, batchFailure{ID: id(e), Code: apiErr.code, Message: apiErr.message, SenderFault: true})
			continue
		}
		ok = append(ok, res)
	}
	return map[string]any{"Successful": ok, "Failed": failed}, nil
}

type receivedMessage struct {
	MessageId     string
	ReceiptHandle string
	MD5OfBody     string
	Body          string
	Attributes    map[string]string `json:",omitempty"`
}

func (s *Server) receiveMessage(r *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueUrl                    string
		MaxNumberOfMessages         *int
		WaitTimeSeconds             *int
		VisibilityTimeout           *int
		AttributeNames              []string
		MessageSystemAttributeNames []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	max := 1
	if in.MaxNumberOfMessages != nil {
		max = *in.MaxNumberOfMessages
		if max < 1 || max > maxBatch {
			return nil, invalidParam("MaxNumberOfMessages %d must be between 1 and %d", max, maxBatch)
		}
	}
	wait := 0
	if in.WaitTimeSeconds != nil {
		wait = *in.WaitTimeSeconds
		if wait < 0 || wait > maxWaitSeconds {
			return nil, invalidParam("WaitTimeSeconds %d must be between 0 and %d", wait, maxWaitSeconds)
		}
	}
	if in.VisibilityTimeout != nil && (*in.VisibilityTimeout < 0 || *in.VisibilityTimeout > maxVisibilitySeconds) {
		return nil, invalidParam("VisibilityTimeout %d out of range", *in.VisibilityTimeout)
	}
	attrs := append(in.AttributeNames, in.MessageSystemAttributeNames...)
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		s.mu.Lock()
		q, apiErr := s.queueLocked(in.QueueUrl)
		if apiErr != nil {
			s.mu.Unlock()
			return nil, apiErr
		}
		vis := q.visibility
		if in.VisibilityTimeout != nil {
			vis = time.Duration(*in.VisibilityTimeout) * time.Second
		}
		got := s.takeLocked(q, max, vis, attrs)
		changed := s.changed
		s.mu.Unlock()
		left := time.Until(deadline)
		if len(got) > 0 || left <= 0 {
			return map[string]any{"Messages": got}, nil
		}
		// Delays and visibility timeouts end without a send: re-check often.
		t := time.NewTimer(min(left, 50*time.Millisecond))
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return map[string]any{"Messages": []receivedMessage{}}, nil
		}
		t.Stop()
	}
}

// takeLocked receives up to max visible messages, moving those past the
// redrive policy's receive count to the dead-letter queue; s.mu is held.
func (s *Server) takeLocked(q *queue, max int, vis time.Duration, attrs []string) []receivedMessage {
	now := s.now()
	out := []receivedMessage{}
	kept := q.msgs[:0]
	for _, m := range q.msgs {
		if len(out) == max || m.visibleAt.After(now) {
			kept = append(kept, m)
			continue
		}
		if dlq := s.queues[q.dlq]; dlq != nil && m.receives >= q.maxRecv {
			m.visibleAt, m.receipt = now, ""
			dlq.msgs = append(dlq.msgs, m) // SQS keeps the receive count
			s.wakeLocked()
			continue
		}
		m.receives++
		m.visibleAt = now.Add(vis)
		m.receipt = newID()
		out = append(out, receivedMessage{MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: m.md5, Body: m.body, Attributes: m.attributes(attrs)})
		kept = append(kept, m)
	}
	clear(q.msgs[len(kept):])
	q.msgs = kept
	return out
}

func (m *message) attributes(names []string) map[string]string {
	all := map[string]string{
		"ApproximateReceiveCount": strconv.Itoa(m.receives),
		"SentTimestamp":           strconv.FormatInt(m.sent.UnixMilli(), 10),
		"SenderId":                Account,
	}
	out := map[string]string{}
	for _, n := range names {
		if n == "All" {
			return all
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// deleteLocked deletes the message with the receipt handle; a handle whose
// message is already gone is accepted, as SQS does.
func deleteLocked(q *queue, receipt string) *apiError {
	if receipt == "" {
		return badRequest("ReceiptHandleIsInvalid", "empty receipt handle")
	}
	for i, m := range q.msgs {
		if m.receipt == receipt {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			return nil
		}
	}
	return nil
}

func (s *Server) deleteMessage(_ *http.Request, body []byte) (any, *apiError) {
	var in struct{ QueueUrl, ReceiptHandle string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(in.QueueUrl)
	if apiErr != nil {
		return nil, apiErr
	}
	if apiErr := deleteLocked(q, in.ReceiptHandle); apiErr != nil {
		return nil, apiErr
	}
	return struct{}{}, nil
}

func (s *Server) deleteMessageBatch(_ *http.Request, body []byte) (any, *apiError) {
	type deleteEntry struct {
		ID            string `json:"Id"`
		ReceiptHandle string
	}
	var in struct {
		QueueUrl string
		Entries  []deleteEntry
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return runBatch(s, in.QueueUrl, in.Entries, func(e deleteEntry) string { return e.ID },
		func(q *queue, e deleteEntry) (map[string]string, *apiError) {
			if apiErr := deleteLocked(q, e.ReceiptHandle); apiErr != nil {
				return nil, apiErr
			}
			return map[string]string{"Id": e.ID}, nil
		})
}

func (s *Server) changeMessageVisibility(_ *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueUrl, ReceiptHandle string
		VisibilityTimeout       int
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.VisibilityTimeout < 0 || in.VisibilityTimeout > maxVisibilitySeconds {
		return nil, invalidParam("VisibilityTimeout %d out of range", in.VisibilityTimeout)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(in.QueueUrl)
	if apiErr != nil {
		return nil, apiErr
	}
	now := s.now()
	for _, m := range q.msgs {
		if m.receipt == in.ReceiptHandle && m.receipt != "" && m.visibleAt.After(now) {
			m.visibleAt = now.Add(time.Duration(in.VisibilityTimeout) * time.Second)
			s.wakeLocked()
			return struct{}{}, nil
		}
	}
	return nil, badRequest("MessageNotInflight", "the message is not in flight")
}

func (s *Server) getQueueAttributes(_ *http.Request, body []byte) (any, *apiError) {
	var in struct {
		QueueUrl       string
		AttributeNames []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(in.QueueUrl)
	if apiErr != nil {
		return nil, apiErr
	}
	now := s.now()
	var visible, inflight, delayed int
	for _, m := range q.msgs {
		switch {
		case !m.visibleAt.After(now):
			visible++
		case m.receipt != "":
			inflight++
		default:
			delayed++
		}
	}
	all := map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inflight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(delayed),
		"QueueArn":                              q.arn(),
		"VisibilityTimeout":                     strconv.Itoa(int(q.visibility / time.Second)),
		"DelaySeconds":                          strconv.Itoa(int(q.delay / time.Second)),
	}
	for k, v := range q.attrs {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		if v, ok := all[n]; ok {
			out[n] = v
		}
	}
	return map[string]any{"Attributes": out}, nil
}

func (s *Server) purgeQueue(_ *http.Request, body []byte) (any, *apiError) {
	var in struct{ QueueUrl string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q, apiErr := s.queueLocked(in.QueueUrl)
	if apiErr != nil {
		return nil, apiErr
	}
	q.msgs = nil
	return struct{}{}, nil
}

// Instance is a Server listening on a TCP address.
type Instance struct {
	// URL is the endpoint to give the SDK (BaseEndpoint): http://host:port.
	URL    string
	Server *Server
	http   *http.Server
}

// Start serves a new Server on addr ("127.0.0.1:0" picks a free port).
func Start(addr string) (*Instance, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sqslocal: listen: %w", err)
	}
	srv := New()
	inst := &Instance{URL: "http://" + ln.Addr().String(), Server: srv, http: &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = inst.http.Serve(ln) }()
	return inst, nil
}

// Close stops the server, ending long polls.
func (i *Instance) Close() error { return i.http.Close() }

// NewClient returns an SDK SQS client for the server at endpoint, with the
// static credentials and region the server accepts (it checks none).
func NewClient(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
	})
}
