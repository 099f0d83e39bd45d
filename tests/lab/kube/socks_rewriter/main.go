// The SOCKS5 server of `deno task bench tun`'s tun2socks comparison: accepts CONNECT (RFC 1928
// §4, no authentication) for any destination and connects to 127.0.0.1 at the requested port
// instead, so tun2socks (which asks for the TUN address the client dialled) and k8stun's
// `--socks-upstream` dialer (which asks for 127.0.0.1) reach the same loopback servers. Written in
// Go, one goroutine per direction, so it is not the figure being measured.
//
// Usage: socks-rewriter <listen address>   (prints "READY <port>")
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "socks-rewriter:", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d\n", listener.Addr().(*net.TCPAddr).Port)
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go serve(conn.(*net.TCPConn))
	}
}

func serve(client *net.TCPConn) {
	defer client.Close()
	client.SetNoDelay(true)
	head := make([]byte, 262)
	// Greeting: version, method count, methods; we choose "no authentication".
	if _, err := io.ReadFull(client, head[:2]); err != nil || head[0] != 5 {
		return
	}
	if _, err := io.ReadFull(client, head[:head[1]]); err != nil {
		return
	}
	client.Write([]byte{5, 0})
	// Request: version, CONNECT, reserved, address type, address, port.
	if _, err := io.ReadFull(client, head[:4]); err != nil || head[1] != 1 {
		return
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		if _, err := io.ReadFull(client, head[:1]); err != nil {
			return
		}
		skip = int(head[0])
	default:
		return
	}
	if _, err := io.ReadFull(client, head[:skip+2]); err != nil {
		return
	}
	port := binary.BigEndian.Uint16(head[skip : skip+2])
	upstream, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		client.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return
	}
	defer upstream.Close()
	client.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, byte(port >> 8), byte(port)})
	done := make(chan struct{})
	go func() {
		io.Copy(upstream, client)
		upstream.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(client, upstream)
	client.CloseWrite()
	<-done
}
