// Command terraform-provider-sandbox serves the sandbox provider: a stand-in
// cloud whose objects are JSON files, with API latencies and rate-limited
// accounts, used by trueline's tests, benchmarks and demo.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/trueline/trueline/sandbox"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "0.1.0"

func main() {
	debug := flag.Bool("debug", false, "run with support for debuggers like delve")
	flag.Parse()
	err := providerserver.Serve(context.Background(), sandbox.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/trueline/sandbox",
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}
