package webhookapi

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// A delivery's attempts, as the API shows them, do not name the replica
// that made them (its host name and process id are the gateway's own).
func TestDeliveryAttemptsNameNoReplica(t *testing.T) {
	b := backends(t)[0]
	ctx := context.Background()
	f := newFixture(t, b, local)
	rcv := newReceiver(t)
	c := client(f.admin, adminKey, 42)
	ep, err := c.Create(ctx, CreateRequest{URL: rcv.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Test(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.waitAttempt(t, d.ID); got.Recent[0].Consumer == "" {
		t.Fatal("the dispatcher recorded no consumer: the test shows nothing")
	}
	req, _ := http.NewRequest(http.MethodGet, f.admin.URL+c.path(ep.ID, "deliveries", d.ID), nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := f.admin.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	host, _ := os.Hostname()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"recent"`) ||
		strings.Contains(string(body), `"consumer"`) || strings.Contains(string(body), host) {
		t.Errorf("GET delivery: %d %s; want its attempts without the replica", resp.StatusCode, body)
	}
}
