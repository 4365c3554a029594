// Package ddblocal starts DynamoDB Local (the official AWS emulator) and creates
// Streamer's tables in it from the shared schema. The local runtime and the
// tests use it; nothing deployed does.
package ddblocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/streamer-dev/streamer/functions/ddbclient"
	"github.com/streamer-dev/streamer/functions/schema"
)

// EnvEmulatorDir overrides where the emulator (the folder holding
// DynamoDBLocal.jar) is looked for.
const EnvEmulatorDir = "DYNAMODB_LOCAL_DIR"

// Region and credentials used against DynamoDB Local; it accepts any.
const (
	Region = "us-east-1"
	keyID  = "local"
	secret = "local"
)

// Instance is a running DynamoDB Local process.
type Instance struct {
	// Endpoint is the emulator's URL, http://127.0.0.1:PORT.
	Endpoint string
	cmd      *exec.Cmd
	done     chan error
}

// FindEmulator returns the folder holding DynamoDBLocal.jar: $DYNAMODB_LOCAL_DIR,
// or .cache/dynamodb-local/emulator in the working directory or one of its parents
// (where scripts/fetch-dynamodb-local.sh puts it).
func FindEmulator() (string, error) {
	if dir := os.Getenv(EnvEmulatorDir); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "DynamoDBLocal.jar")); err != nil {
			return "", fmt.Errorf("find dynamodb local: %s: %w", EnvEmulatorDir, err)
		}
		return dir, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find dynamodb local: %w", err)
	}
	for {
		cand := filepath.Join(dir, ".cache", "dynamodb-local", "emulator")
		if _, err := os.Stat(filepath.Join(cand, "DynamoDBLocal.jar")); err == nil {
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find dynamodb local: no .cache/dynamodb-local/emulator here or above; run scripts/fetch-dynamodb-local.sh (make test and make dev do)")
		}
		dir = parent
	}
}

// Start launches DynamoDB Local in memory on a free loopback port and waits until
// it answers. The process dies with its parent; Stop ends it earlier.
func Start(ctx context.Context) (*Instance, error) {
	dir, err := FindEmulator()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start dynamodb local: %w", err)
	}
	cmd := exec.Command("java",
		"-Xms64m", "-Xmx1g",
		"-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(dir, "DynamoDBLocal.jar"),
		"-inMemory", "-disableTelemetry", "-port", strconv.Itoa(port))
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dynamodb local: %w", err)
	}
	inst := &Instance{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1)}
	go func() { inst.done <- cmd.Wait() }()
	if err := inst.waitReady(ctx, 60*time.Second); err != nil {
		_ = inst.Stop()
		return nil, err
	}
	return inst, nil
}

func (i *Instance) waitReady(ctx context.Context, limit time.Duration) error {
	client := NewClient(i.Endpoint)
	deadline := time.Now().Add(limit)
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := client.ListTables(attemptCtx, &dynamodb.ListTablesInput{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-i.done:
			return fmt.Errorf("start dynamodb local: exited early: %v", werr)
		case <-ctx.Done():
			return fmt.Errorf("start dynamodb local: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start dynamodb local: not ready after %s: %w", limit, err)
		}
	}
}

// Stop kills the emulator and waits for it to exit.
func (i *Instance) Stop() error {
	if i == nil || i.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-i.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-i.done:
	case <-time.After(10 * time.Second):
		return errors.New("stop dynamodb local: process did not exit")
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// AWSConfig returns an SDK config with the static credentials and region
// DynamoDB Local accepts.
func AWSConfig() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	}
}

// NewClient returns a DynamoDB client for endpoint.
func NewClient(endpoint string) *dynamodb.Client {
	return ddbclient.New(AWSConfig(), endpoint)
}

// NewStreamsClient returns a DynamoDB Streams client for endpoint.
func NewStreamsClient(endpoint string) *dynamodbstreams.Client {
	return dynamodbstreams.NewFromConfig(AWSConfig(), func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// TableNames are the physical names of the three tables.
type TableNames struct {
	Connections   string
	Requests      string
	Subscriptions string
}

// Prefixed returns table names that start with prefix, so that several test
// suites or runtimes can share one DynamoDB Local.
func Prefixed(prefix string) TableNames {
	return TableNames{
		Connections:   prefix + schema.Connections.ID,
		Requests:      prefix + schema.Requests.ID,
		Subscriptions: prefix + schema.Subscriptions.ID,
	}
}

func (n TableNames) byTable() map[string]schema.Table {
	return map[string]schema.Table{
		n.Connections:   schema.Connections,
		n.Requests:      schema.Requests,
		n.Subscriptions: schema.Subscriptions,
	}
}

// CreateTables creates the three tables from the schema (when they do not exist
// yet), waits until they are active and enables TTL on each.
func CreateTables(ctx context.Context, client *dynamodb.Client, names TableNames) error {
	for name, table := range names.byTable() {
		_, err := client.CreateTable(ctx, table.CreateTableInput(name))
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = 50 * time.Millisecond
			o.MaxDelay = 500 * time.Millisecond
		})
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
			return fmt.Errorf("wait for table %s: %w", name, err)
		}
		if _, err := client.UpdateTimeToLive(ctx, table.UpdateTimeToLiveInput(name)); err != nil && !isTTLAlreadyEnabled(err) {
			return fmt.Errorf("enable ttl on %s: %w", name, err)
		}
	}
	return nil
}

func isTTLAlreadyEnabled(err error) bool {
	var ve interface{ ErrorMessage() string }
	return errors.As(err, &ve) && strings.Contains(ve.ErrorMessage(), "already enabled")
}
