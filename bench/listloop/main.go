// Command listloop is the baseline of the scan benchmark: a bare
// aws-sdk-go-v2 ListObjectsV2 paginator loop that only counts objects. It
// builds its client exactly as providers/s3 does (default credential chain,
// path style, checksums only when required), so that the ratio of
// `syncer scan` to listloop is what syncer adds on top of the listing itself.
//
// It prints one line to stdout:
//
//	listloop: listed N objects in 1.234s (810000 obj/s)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000")
	bucket := flag.String("bucket", "bench", "bucket")
	prefix := flag.String("prefix", "", "key prefix")
	region := flag.String("region", "us-east-1", "region")
	pageSize := flag.Int("page", 1000, "objects per ListObjectsV2 page")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("listloop: ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *endpoint, *bucket, *prefix, *region, int32(*pageSize)); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, endpoint, bucket, prefix, region string, pageSize int32) error {
	start := time.Now()
	// The same settings as providers/s3.New.
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(region),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	)
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = true
	})
	in := &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(pageSize)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	n, pages := 0, 0
	for pg := awss3.NewListObjectsV2Paginator(client, in); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s after %d objects: %w", bucket, prefix, n, err)
		}
		n += len(out.Contents)
		pages++
	}
	d := time.Since(start)
	fmt.Printf("listloop: listed %d objects in %d pages in %s (%.0f obj/s)\n", n, pages, d.Round(time.Millisecond), float64(n)/d.Seconds())
	return nil
}
