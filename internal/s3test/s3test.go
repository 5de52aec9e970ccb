// Package s3test runs a real S3 server (versitygw, built by `make tools`) on
// loopback for tests, with a root access key, buckets, and further users
// from versitygw's own IAM (kept in a directory of the test's).
package s3test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/trueline/trueline/internal/testenv"
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	Access   string
	Secret   string
	Dir      string     // the posix root: <Dir>/<bucket>/<key>
	Client   *s3.Client // as root
	bin      string
}

// Start runs versitygw until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testenv.Tool(t, "versitygw")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // versitygw takes the port next
		t.Fatal(err)
	}
	s := &Server{Endpoint: "http://" + addr, Access: "trueline-access", Secret: "trueline-secret-key", Dir: t.TempDir(), bin: bin}
	// The IAM directory gives versitygw users besides root (User); the cache
	// is off so a user is known as soon as it is created.
	cmd := exec.Command(bin, "--access", s.Access, "--secret", s.Secret, "--port", addr,
		"--iam-dir", t.TempDir(), "--iam-cache-disable", "posix", s.Dir)
	cmd.Env = os.Environ()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed on purpose: Wait reports the kill, and a versitygw that is
		// already gone cannot be killed.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(s.Endpoint); err == nil {
			_ = resp.Body.Close() // an answer is all that is waited for
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Client = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.Access, s.Secret, "")})
	return s
}

// Bucket creates a bucket.
func (s *Server) Bucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// User creates a gateway user with the role "user": it may use the buckets
// it owns (BucketOwnedBy) and no others.
func (s *Server) User(t testing.TB, access, secret string) {
	t.Helper()
	s.admin(t, "create-user", "--access", access, "--secret", secret, "--role", "user")
}

// BucketOwnedBy creates a bucket owned by a user: only that user (and root)
// may read or write it.
func (s *Server) BucketOwnedBy(t testing.TB, name, owner string) {
	t.Helper()
	s.admin(t, "create-bucket", "--bucket", name, "--owner", owner)
}

// admin runs a versitygw admin command as root, with the keys in its
// environment rather than its arguments.
func (s *Server) admin(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(s.bin, append([]string{"admin", "--endpoint-url", s.Endpoint}, args...)...)
	cmd.Env = append(os.Environ(), "ADMIN_ACCESS_KEY_ID="+s.Access, "ADMIN_SECRET_ACCESS_KEY="+s.Secret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin %s: %v\n%s", args[0], err, out)
	}
}

// Get reads an object.
func (s *Server) Get(t testing.TB, bucket, key string) ([]byte, bool) {
	t.Helper()
	out, err := s.Client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, false
	}
	defer func() { _ = out.Body.Close() }() // closing a read body has nothing to report
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return b.Bytes(), true
}

// List lists keys under a prefix.
func (s *Server) List(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	out, err := s.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatalf("list s3://%s/%s: %v", bucket, prefix, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}
