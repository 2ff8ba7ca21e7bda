// CoreDNS with only the plugins the cluster's Corefile uses
// (scripts/cluster/addons/coredns.yaml), built by scripts/cluster.sh with
// everything else in one `go build` of this module. The stock binary links
// every plugin (route53, azure, clouddns, etcd, ...) and their SDKs; this one
// is the same server and plugins, without those. A plugin the Corefile names
// must be imported here and listed in directives, or CoreDNS refuses the
// Corefile ("unknown directive").
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics" // the "prometheus" directive
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

// directives: the plugins above, in the order of CoreDNS's plugin.cfg (the
// order a query passes through them, whatever the Corefile's order).
var directives = []string{
	"reload",
	"ready",
	"health",
	"prometheus",
	"errors",
	"loadbalance",
	"cache",
	"template",
	"kubernetes",
	"loop",
}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
