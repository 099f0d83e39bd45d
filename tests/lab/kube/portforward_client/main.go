// The client-go baseline for `deno task bench tier`: kubectl's own port-forward code path
// (k8s.io/client-go/tools/portforward with the WebSocket-tunnelled SPDY dialer and the direct
// SPDY upgrade as its fallback, as `kubectl port-forward` builds it), forwarding one local port
// to one pod port. Prints "READY <local port>" once listening.
//
// Usage: portforward-client <kubeconfig> <namespace> <pod> <pod port>
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: portforward-client <kubeconfig> <namespace> <pod> <pod port>")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Args[1])
	if err != nil {
		fail(err)
	}
	target, err := url.Parse(fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/portforward",
		config.Host, os.Args[2], os.Args[3]))
	if err != nil {
		fail(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(config)
	if err != nil {
		fail(err)
	}
	var dialer httpstream.Dialer = spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", target)
	if os.Getenv("PORTFORWARD_SPDY_ONLY") == "" {
		tunnel, err := portforward.NewSPDYOverWebsocketDialer(target, config)
		if err != nil {
			fail(err)
		}
		dialer = portforward.NewFallbackDialer(tunnel, dialer, func(err error) bool {
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		})
	}
	stop := make(chan struct{})
	ready := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		close(stop)
	}()
	forwarder, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"},
		[]string{"0:" + os.Args[4]}, stop, ready, io.Discard, os.Stderr)
	if err != nil {
		fail(err)
	}
	go func() {
		<-ready
		ports, err := forwarder.GetPorts()
		if err != nil {
			fail(err)
		}
		fmt.Printf("READY %d\n", ports[0].Local)
	}()
	if err := forwarder.ForwardPorts(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "portforward-client:", err)
	os.Exit(1)
}
