package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3Timeout bounds each S3 call, its retries included, and each HTTP
// request in it: a bucket that stops answering must not hold a run's
// record, or the retention sweep, forever.
const s3Timeout = 30 * time.Second

// s3Writer writes records beside a state object, with the backend's
// region, endpoint, path style, profile, credentials and encryption.
type s3Writer struct {
	client  *s3.Client
	bucket  string
	prefix  string // <state key>.trueline/
	sse     types.ServerSideEncryption
	kmsKey  string
	timeout time.Duration // of each call
}

// bound gives one S3 call its deadline.
func (w *s3Writer) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.timeout)
}

func newS3(ctx context.Context, b Backend, workspace string) (*s3Writer, error) {
	bucket, key := b.String("bucket"), b.String("key")
	if bucket == "" || key == "" {
		return nil, errors.New("s3 backend without bucket or key: set them in the backend block or backend_config")
	}
	// The state of a workspace other than default lives under the prefix.
	if workspace != "" && workspace != "default" {
		prefix := "env:"
		if v, ok := b.Config["workspace_key_prefix"].(string); ok {
			prefix = v
		}
		key = strings.Trim(prefix, "/") + "/" + workspace + "/" + key
	}
	opts := []func(*awsconfig.LoadOptions) error{}
	region := b.String("region")
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	opts = append(opts, awsconfig.WithRegion(region),
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(s3Timeout)))
	if p := b.String("profile"); p != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(p))
	}
	if ak, sk := b.String("access_key"), b.String("secret_key"); ak != "" && sk != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, b.String("token"))))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 backend: AWS configuration: %w", err)
	}
	endpoint := b.String("endpoint")
	if eps, ok := b.Config["endpoints"].(map[string]any); ok {
		if e, ok := eps["s3"].(string); ok && e != "" {
			endpoint = e
		}
	}
	pathStyle := b.Bool("use_path_style") || b.Bool("force_path_style")
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	w := &s3Writer{client: client, bucket: bucket, prefix: key + ".trueline/", timeout: s3Timeout}
	if b.Bool("encrypt") {
		w.sse = types.ServerSideEncryptionAes256
	}
	if k := b.String("kms_key_id"); k != "" {
		w.sse, w.kmsKey = types.ServerSideEncryptionAwsKms, k
	}
	return w, nil
}

func (w *s3Writer) Where() Location {
	return Location{Backend: "s3", Record: "s3://" + w.bucket + "/" + w.prefix}
}

func (w *s3Writer) put(ctx context.Context, key string, body []byte, cond func(*s3.PutObjectInput)) error {
	in := &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json")}
	if w.sse != "" {
		in.ServerSideEncryption = w.sse
	}
	if w.kmsKey != "" {
		in.SSEKMSKeyId = aws.String(w.kmsKey)
	}
	if cond != nil {
		cond(in)
	}
	ctx, cancel := w.bound(ctx)
	defer cancel()
	_, err := w.client.PutObject(ctx, in)
	return err
}

// get reads a whole object and its ETag.
func (w *s3Writer) get(ctx context.Context, key string) ([]byte, *string, error) {
	ctx, cancel := w.bound(ctx)
	defer cancel()
	got, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, nil, err
	}
	b, err := io.ReadAll(got.Body)
	if cerr := got.Body.Close(); err == nil {
		err = cerr
	}
	return b, got.ETag, err
}

func (w *s3Writer) Write(ctx context.Context, rec Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	runKey := w.prefix + "runs/" + runName(rec)
	if err := w.put(ctx, runKey, b, nil); err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", w.bucket, runKey, explain(err))
	}
	// latest.json: a whole-object PUT is atomic (never torn); a conditional
	// one (If-Match on the ETag read) keeps two replicas from replacing a
	// newer record with an older one.
	latest := w.prefix + "latest.json"
	for attempt := 0; attempt < 3; attempt++ {
		cur, etag, err := w.get(ctx, latest)
		if err == nil {
			var old Record
			if json.Unmarshal(cur, &old) == nil && !newer(rec, old) {
				return nil
			}
		} else if !isNotFound(err) {
			return fmt.Errorf("read s3://%s/%s: %w", w.bucket, latest, explain(err))
		}
		err = w.put(ctx, latest, b, func(in *s3.PutObjectInput) {
			if etag != nil {
				in.IfMatch = etag
			} else {
				in.IfNoneMatch = aws.String("*")
			}
		})
		if err == nil {
			return nil
		}
		if isUnsupported(err) {
			// A server without conditional writes: a plain PUT is still atomic.
			if err := w.put(ctx, latest, b, nil); err != nil {
				return fmt.Errorf("write s3://%s/%s: %w", w.bucket, latest, explain(err))
			}
			return nil
		}
		if !isPreconditionFailed(err) {
			return fmt.Errorf("write s3://%s/%s: %w", w.bucket, latest, explain(err))
		}
		// Someone else wrote latest.json meanwhile: read again and compare.
	}
	return fmt.Errorf("write s3://%s/%s: it kept changing under us", w.bucket, latest)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isNotFound(err error) bool {
	var nk *types.NoSuchKey
	return errors.As(err, &nk) || apiCode(err) == "NotFound" || apiCode(err) == "NoSuchKey"
}

func isPreconditionFailed(err error) bool {
	c := apiCode(err)
	return c == "PreconditionFailed" || c == "ConditionalRequestConflict"
}

func isUnsupported(err error) bool {
	c := apiCode(err)
	return c == "NotImplemented" || c == "InvalidArgument"
}

// explain adds what to do to the errors people meet.
func explain(err error) error {
	switch apiCode(err) {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidClientTokenId":
		return fmt.Errorf("%w (check the credentials trueline runs with: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the backend's profile)", err)
	case "NoSuchBucket":
		return fmt.Errorf("%w (the backend's bucket does not exist)", err)
	}
	return err
}
