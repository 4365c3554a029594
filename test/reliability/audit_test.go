package reliability

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/streamer-dev/streamer/functions/actions"
	"github.com/streamer-dev/streamer/functions/demo"
	"github.com/streamer-dev/streamer/functions/schema"
	"github.com/streamer-dev/streamer/functions/store"
)

// runCounter counts, per request key (tenant#id), the handler runs that
// returned a result: more than one is a duplicated completion.
type runCounter struct {
	mu   sync.Mutex
	done map[string]int
}

// counted returns the demo actions with every handler counted by c.
func (c *runCounter) counted() *actions.Registry {
	c.done = map[string]int{}
	plain := actions.NewRegistry()
	demo.Register(plain)
	reg := actions.NewRegistry()
	for _, name := range plain.Names() {
		a, _ := plain.Lookup(name)
		reg.MustRegister(name, c.wrap(a.Handler), a.Options)
	}
	return reg
}

func (c *runCounter) wrap(h actions.Handler) actions.Handler {
	return func(ctx context.Context, req actions.Request, progress actions.Reporter) (any, error) {
		res, err := h(ctx, req, progress)
		if err == nil {
			c.mu.Lock()
			c.done[store.RequestKey(req.TenantID, req.ID)]++
			c.mu.Unlock()
		}
		return res, err
	}
}

// duplicates counts the requests whose handler returned a result more than once.
func (c *runCounter) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, runs := range c.done {
		if runs > 1 {
			n++
		}
	}
	return n
}

// requestsOf reads every request of tenant from the tenant-requests index,
// keyed by request key (tenant#id).
func requestsOf(ctx context.Context, db *dynamodb.Client, table, tenant string) (map[string]store.Request, error) {
	p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(schema.IndexTenantRequests),
		KeyConditionExpression:    aws.String("#t = :t"),
		ExpressionAttributeNames:  map[string]string{"#t": schema.AttrTenantID},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: tenant}},
	})
	out := map[string]store.Request{}
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		var rs []store.Request
		if err := attributevalue.UnmarshalListOfMaps(page.Items, &rs); err != nil {
			return nil, err
		}
		for _, r := range rs {
			out[r.RequestID] = r
		}
	}
	return out, nil
}

// settle waits until every request of the tenants is final or timeout passes,
// then returns them all, keyed by request key.
func settle(t *testing.T, db *dynamodb.Client, table string, tenants []string, timeout time.Duration) map[string]store.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(timeout)
	for {
		all := map[string]store.Request{}
		open := 0
		for _, tenant := range tenants {
			rs, err := requestsOf(ctx, db, table, tenant)
			if err != nil {
				t.Fatalf("read requests of %s: %v", tenant, err)
			}
			for k, r := range rs {
				all[k] = r
				if !r.Status.Final() {
					open++
				}
			}
		}
		if open == 0 || time.Now().After(deadline) {
			return all
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// tally counts, into o, how the acknowledged requests (by request key) ended:
// completed, failed, cancelled, stuck (not final) or lost (not stored).
func tally(o *outcome, acked []string, reqs map[string]store.Request) {
	o.Acknowledged = len(acked)
	for _, key := range acked {
		r, ok := reqs[key]
		switch {
		case !ok:
			o.Lost++
		case r.Status == store.StatusCompleted:
			o.Completed++
		case r.Status == store.StatusFailed:
			o.Failed++
		case r.Status == store.StatusCancelled:
			o.Cancelled++
		default:
			o.Stuck++
		}
	}
}
