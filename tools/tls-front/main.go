// fieldlab-tls-front terminates TLS in front of a lab simulator with Go's crypto/tls, which does not
// implement the max_fragment_length extension (RFC 6066 §4): it never echoes it and always sends records
// of up to 16 KB, as AWS IoT Core does (Device Advisor's "TLS Receive Maximum Size Fragments"). Node's
// TLS server (OpenSSL) always accepts the extension and cannot be told otherwise.
//
//	client ──TLS──▶ front ──TCP: PROXY v2 header (client address, ALPN, SNI, SSL, client certificates)──▶ simulator
//
// It asks for a client certificate without verifying it (the simulator decides), and writes one JSON line
// per connection event to stderr: listening, accept, handshake (with the client's max_fragment_length),
// handshake-error (with the alert), close (with the largest record sent). It exits on SIGTERM or when
// its stdin closes (it lives as long as the simulator that started it).
//
//	fieldlab-tls-front -listen 127.0.0.1:0 -upstream 127.0.0.1:1883 -cert chain.pem -key key.pem \
//	  [-sni name=chain.pem,key.pem ...] [-alpn x-amzn-mqtt-ca,mqtt]
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	handshakeTimeout = 10 * time.Second
	dialTimeout      = 5 * time.Second
	// The largest TLS record a client may send (RFC 8446 §5.2: 2^14 + 256), plus its header.
	maxRecord = 5 + 16384 + 256
)

// logger writes one JSON object per line to stderr.
type logger struct{ mu sync.Mutex }

func (l *logger) line(fields map[string]any) {
	b, err := json.Marshal(fields)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	os.Stderr.Write(append(b, '\n'))
}

var log logger

type sniFlag map[string][2]string

func (s sniFlag) String() string { return fmt.Sprint(map[string][2]string(s)) }
func (s sniFlag) Set(v string) error {
	name, files, ok := strings.Cut(v, "=")
	cert, key, ok2 := strings.Cut(files, ",")
	if !ok || !ok2 || name == "" {
		return errors.New("expected name=chain.pem,key.pem")
	}
	s[strings.ToLower(name)] = [2]string{cert, key}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "the simulator's plain listener (host:port)")
	certFile := flag.String("cert", "", "server certificate chain (PEM)")
	keyFile := flag.String("key", "", "server key (PEM)")
	alpn := flag.String("alpn", "", "ALPN protocols accepted, comma-separated")
	sni := sniFlag{}
	flag.Var(sni, "sni", "another certificate for a server name: name=chain.pem,key.pem (repeatable)")
	flag.Parse()
	if *upstream == "" || *certFile == "" || *keyFile == "" {
		fail("-upstream, -cert and -key are required")
	}
	def, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fail(fmt.Sprintf("loading -cert/-key: %v", err))
	}
	byName := map[string]*tls.Certificate{}
	for name, files := range sni {
		c, err := tls.LoadX509KeyPair(files[0], files[1])
		if err != nil {
			fail(fmt.Sprintf("loading -sni %s: %v", name, err))
		}
		byName[name] = &c
	}
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Server names compare case-insensitively (RFC 6066 §3); other names (or none) get -cert.
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := byName[strings.ToLower(h.ServerName)]; ok {
				return c, nil
			}
			return &def, nil
		},
		// Asked for, not verified: the simulator checks it against its registry.
		ClientAuth: tls.RequestClientCert,
		// Full-size records from the first byte, as a cloud endpoint sends them.
		DynamicRecordSizingDisabled: true,
	}
	if *alpn != "" {
		conf.NextProtos = strings.Split(*alpn, ",")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fail(fmt.Sprintf("listening on %s: %v", *listen, err))
	}
	log.line(map[string]any{"event": "listening", "address": ln.Addr().String()})

	var wg sync.WaitGroup
	conns := newConnSet()
	stop := make(chan struct{})
	var once sync.Once
	shutdown := func() { once.Do(func() { close(stop); ln.Close(); conns.closeAll() }) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; shutdown() }()
	go func() { io.Copy(io.Discard, os.Stdin); shutdown() }()

	for id := 1; ; id++ {
		raw, err := ln.Accept()
		if err != nil {
			select {
			case <-stop:
				wg.Wait()
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			shutdown()
			continue
		}
		conns.add(raw)
		wg.Add(1)
		go func(raw net.Conn, id int) {
			defer wg.Done()
			defer conns.remove(raw)
			serve(raw, id, conf, *upstream, conns)
		}(raw, id)
	}
}

func fail(msg string) {
	log.line(map[string]any{"event": "fatal", "message": msg})
	os.Exit(2)
}

type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func newConnSet() *connSet { return &connSet{m: map[net.Conn]struct{}{}} }
func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	s.m[c] = struct{}{}
	s.mu.Unlock()
}
func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

// serve runs one client connection: peek its ClientHello, handshake, dial the simulator, pipe.
func serve(raw net.Conn, id int, conf *tls.Config, upstream string, conns *connSet) {
	started := time.Now()
	remote := raw.RemoteAddr().String()
	log.line(map[string]any{"event": "accept", "id": id, "remote": remote})
	raw.SetDeadline(started.Add(handshakeTimeout))
	br := bufio.NewReaderSize(raw, maxRecord)
	hello := peekClientHello(br)
	rec := &recordConn{Conn: raw, r: br}
	tc := tls.Server(rec, conf)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	closeLine := map[string]any{"event": "close", "id": id, "remote": remote}
	hello.into(closeLine)
	defer func() {
		tc.Close()
		closeLine["bytesIn"] = rec.bytesIn
		closeLine["bytesOut"] = rec.bytesOut
		closeLine["durationMs"] = time.Since(started).Milliseconds()
		log.line(closeLine)
	}()
	if err != nil {
		line := map[string]any{"event": "handshake-error", "id": id, "remote": remote, "message": err.Error()}
		if n, ok := receivedAlert(err); ok {
			line["alert"] = n
		} else if rec.in.gotAlert {
			line["alert"] = rec.in.alert
		}
		log.line(line)
		return
	}
	raw.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	rec.startCounting(cs)
	hs := map[string]any{
		"event": "handshake", "id": id, "remote": remote,
		"version": versionName(cs.Version), "cipher": tls.CipherSuiteName(cs.CipherSuite),
		"alpn": cs.NegotiatedProtocol, "sni": cs.ServerName, "clientCertificates": len(cs.PeerCertificates),
	}
	hello.into(hs)
	log.line(hs)

	up, err := net.DialTimeout("tcp", upstream, dialTimeout)
	if err != nil {
		closeLine["error"] = fmt.Sprintf("upstream %s: %v", upstream, err)
		return
	}
	conns.add(up)
	defer conns.remove(up)
	defer up.Close()
	if _, err := up.Write(proxyHeader(raw, cs)); err != nil {
		closeLine["error"] = fmt.Sprintf("upstream %s: %v", upstream, err)
		return
	}
	if n, ok := receivedAlert(pipe(tc, raw, up)); ok {
		closeLine["alert"] = n // e.g. record_overflow from a client that cannot take the records
	}
	closeLine["records"] = rec.records
	closeLine["recordBytes"] = rec.maxPlaintext
	closeLine["wireRecordBytes"] = rec.maxWire
}

// pipe copies both ways; each side's end is passed on as a half-close (TLS close_notify then TCP FIN
// towards the client, FIN towards the simulator). Returns how reading from the client ended.
func pipe(tc *tls.Conn, raw net.Conn, up net.Conn) error {
	done := make(chan struct{}, 2)
	var clientErr error
	go func() {
		_, clientErr = io.Copy(up, tc)
		if t, ok := up.(*net.TCPConn); ok {
			t.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, err := io.Copy(tc, up)
		if err == nil {
			tc.CloseWrite()
			if t, ok := raw.(*net.TCPConn); ok {
				t.CloseWrite()
			}
		} else {
			// The simulator reset: so does the client's connection.
			raw.Close()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
	return clientErr
}

// receivedAlert is the alert number the client sent, when the handshake failed on one (crypto/tls
// reports it as a net.OpError "remote error" around its unexported alert type, a uint8).
func receivedAlert(err error) (uint64, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(op.Err)
	if v.Kind() != reflect.Uint8 {
		return 0, false
	}
	return v.Uint(), true
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return fmt.Sprintf("0x%04x", v)
}

// recordConn counts the TLS records written to the client (their 5-byte headers are in the clear) and
// the bytes each way.
type recordConn struct {
	net.Conn
	r        *bufio.Reader
	in       inbound
	bytesIn  int64
	bytesOut int64
	// After the handshake: application records sent, the largest (wire length and plaintext).
	counting     bool
	overhead     int
	records      int
	maxWire      int
	maxPlaintext int
	out          recordStream
}

// recordStream follows a stream of TLS records (RFC 8446 §5.1: a 5-byte header in the clear, then its body)
// across arbitrary reads or writes: onHeader sees each header, onBody each piece of a body.
type recordStream struct {
	hdr    [5]byte
	hdrLen int
	body   int
}

func (r *recordStream) walk(p []byte, onHeader func(contentType byte, length int), onBody func([]byte)) {
	for len(p) > 0 {
		if r.body > 0 {
			k := min(r.body, len(p))
			if onBody != nil {
				onBody(p[:k])
			}
			r.body -= k
			p = p[k:]
			continue
		}
		k := copy(r.hdr[r.hdrLen:], p)
		r.hdrLen += k
		p = p[k:]
		if r.hdrLen < 5 {
			continue
		}
		r.hdrLen = 0
		r.body = int(binary.BigEndian.Uint16(r.hdr[3:5]))
		onHeader(r.hdr[0], r.body)
	}
}

func (c *recordConn) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.bytesIn += int64(n)
	c.in.scan(b[:n])
	return n, err
}

// inbound follows the client's records for one thing crypto/tls cannot report: an alert sent in the
// clear during a TLS 1.3 handshake (OpenSSL rejects the server's certificate before it has handshake
// keys to send with; crypto/tls, expecting an encrypted record, reports "bad record MAC").
type inbound struct {
	records recordStream
	// The description byte of a plaintext alert (RFC 8446 §6), once seen.
	alert    int
	alertAt  int // position within the alert record's 2-byte body
	inAlert  bool
	gotAlert bool
}

func (in *inbound) scan(p []byte) {
	in.records.walk(p, func(contentType byte, length int) {
		// RFC 8446 §5.1: content type 21 (alert) in the clear is 2 bytes: level, description.
		in.inAlert, in.alertAt = contentType == 21 && length == 2, 0
	}, func(body []byte) {
		if !in.inAlert {
			return
		}
		for _, b := range body {
			if in.alertAt == 1 && !in.gotAlert {
				in.alert, in.gotAlert = int(b), true
			}
			in.alertAt++
		}
	})
}

// startCounting: from now on, records are application data; `overhead` is what encryption adds to each.
func (c *recordConn) startCounting(cs tls.ConnectionState) {
	c.counting = true
	switch {
	case cs.Version == tls.VersionTLS13:
		c.overhead = 1 + 16 // inner content type + AEAD tag (RFC 8446 §5.2)
	case strings.Contains(tls.CipherSuiteName(cs.CipherSuite), "CHACHA20"):
		c.overhead = 16 // tag (RFC 7905)
	case strings.Contains(tls.CipherSuiteName(cs.CipherSuite), "GCM"):
		c.overhead = 8 + 16 // explicit nonce + tag (RFC 5288 §3)
	default:
		c.overhead = 0 // CBC: padding varies; the wire length stands
	}
}

func (c *recordConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.bytesOut += int64(n)
	c.out.walk(b[:n], func(contentType byte, length int) {
		if c.counting && contentType == 23 {
			c.records++
			c.maxWire = max(c.maxWire, length)
			c.maxPlaintext = max(c.maxPlaintext, length-c.overhead)
		}
	}, nil)
	return n, err
}

// clientHello is what the front reads itself from the ClientHello: crypto/tls's ClientHelloInfo does not
// carry max_fragment_length (RFC 6066 §4) or record_size_limit (RFC 8449).
type clientHello struct {
	mfl             int // bytes the client asked for (512..4096); 0: not asked
	recordSizeLimit int
}

func (h clientHello) into(m map[string]any) {
	if h.mfl > 0 {
		m["mfl"] = h.mfl
	}
	if h.recordSizeLimit > 0 {
		m["recordSizeLimit"] = h.recordSizeLimit
	}
}

// peekClientHello parses the first handshake record without consuming it (tls.Server reads it after).
func peekClientHello(br *bufio.Reader) clientHello {
	var h clientHello
	head, err := br.Peek(5)
	if err != nil || head[0] != 22 { // RFC 8446 §5.1: handshake
		return h
	}
	body, err := br.Peek(5 + int(binary.BigEndian.Uint16(head[3:5])))
	if err != nil {
		return h
	}
	p := body[5:]
	// Handshake header: type 1 (client_hello), 3-byte length; then version(2) random(32).
	if len(p) < 4+2+32 || p[0] != 1 {
		return h
	}
	p = p[4+2+32:]
	skip := func(lenBytes int) bool {
		if len(p) < lenBytes {
			return false
		}
		n := 0
		for _, b := range p[:lenBytes] {
			n = n<<8 | int(b)
		}
		if len(p) < lenBytes+n {
			return false
		}
		p = p[lenBytes+n:]
		return true
	}
	// session_id, cipher_suites, compression_methods
	if !skip(1) || !skip(2) || !skip(1) || len(p) < 2 {
		return h
	}
	exts := p[2:]
	if n := int(binary.BigEndian.Uint16(p[:2])); n < len(exts) {
		exts = exts[:n]
	}
	for len(exts) >= 4 {
		typ := binary.BigEndian.Uint16(exts[:2])
		n := int(binary.BigEndian.Uint16(exts[2:4]))
		if len(exts) < 4+n {
			break
		}
		data := exts[4 : 4+n]
		switch {
		case typ == 1 && n == 1 && data[0] >= 1 && data[0] <= 4: // 2^(8+code) bytes (RFC 6066 §4)
			h.mfl = 1 << (8 + int(data[0]))
		case typ == 28 && n == 2: // RFC 8449 §4
			h.recordSizeLimit = int(binary.BigEndian.Uint16(data))
		}
		exts = exts[4+n:]
	}
	return h
}

// PROXY protocol v2 (HAProxy's proxy-protocol.txt §2.2).
var proxySignature = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

const (
	pp2TypeALPN       = 0x01
	pp2TypeAuthority  = 0x02
	pp2TypeSSL        = 0x20
	pp2SubtypeVersion = 0x21
	pp2SubtypeCipher  = 0x23
	pp2ClientSSL      = 0x01
	pp2ClientCertConn = 0x02
	// fieldlab's own (custom range 0xE0-0xEF): one TLV per client certificate, DER, leaf first.
	pp2TypeClientCertificate = 0xE0
)

func tlv(typ byte, value []byte) []byte {
	return append([]byte{typ, byte(len(value) >> 8), byte(len(value))}, value...)
}

// proxyHeader: PROXY command, the client's address as source, the front's as destination, and the TLS
// facts the simulator would have read from its own TLS socket.
func proxyHeader(raw net.Conn, cs tls.ConnectionState) []byte {
	src, _ := raw.RemoteAddr().(*net.TCPAddr)
	dst, _ := raw.LocalAddr().(*net.TCPAddr)
	var fam byte
	var addrs []byte
	port := func(p int) []byte { return []byte{byte(p >> 8), byte(p)} }
	switch {
	case src != nil && dst != nil && src.IP.To4() != nil && dst.IP.To4() != nil:
		fam = 0x11 // TCP over IPv4
		addrs = append(append(append(append(addrs, src.IP.To4()...), dst.IP.To4()...), port(src.Port)...), port(dst.Port)...)
	case src != nil && dst != nil:
		fam = 0x21 // TCP over IPv6
		addrs = append(append(append(append(addrs, src.IP.To16()...), dst.IP.To16()...), port(src.Port)...), port(dst.Port)...)
	default:
		fam = 0x00 // UNSPEC
	}
	var tlvs []byte
	if cs.NegotiatedProtocol != "" {
		tlvs = append(tlvs, tlv(pp2TypeALPN, []byte(cs.NegotiatedProtocol))...)
	}
	if cs.ServerName != "" {
		tlvs = append(tlvs, tlv(pp2TypeAuthority, []byte(cs.ServerName))...)
	}
	client := byte(pp2ClientSSL)
	if len(cs.PeerCertificates) > 0 {
		client |= pp2ClientCertConn
	}
	// verify: zero only for a certificate that was verified; this front never verifies (spec §2.2.5).
	ssl := []byte{client, 0, 0, 0, 1}
	ssl = append(ssl, tlv(pp2SubtypeVersion, []byte(versionName(cs.Version)))...)
	ssl = append(ssl, tlv(pp2SubtypeCipher, []byte(tls.CipherSuiteName(cs.CipherSuite)))...)
	tlvs = append(tlvs, tlv(pp2TypeSSL, ssl)...)
	for _, c := range cs.PeerCertificates {
		tlvs = append(tlvs, tlv(pp2TypeClientCertificate, c.Raw)...)
	}
	body := append(addrs, tlvs...)
	h := append([]byte{}, proxySignature...)
	h = append(h, 0x21, fam, byte(len(body)>>8), byte(len(body))) // version 2, PROXY
	return append(h, body...)
}
