// golibcni drives a network configuration list through Go's libcni, as a runtime on a
// node does (containerd's CRI and CRI-O call the same library): the benchmarks use it
// to time the runtime path with our launchers or the reference plugins behind it.
//
//	golibcni add|check|del CONFLIST NETNS CONTAINERID [IFNAME]
//
// CNI_PATH names the plugin directories (colon-separated), CNI_CACHE_DIR the result
// cache (default /var/lib/cni), CAP_ARGS a JSON object of capability arguments (such as
// portMappings). The result of add is printed as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "golibcni: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		fail("usage: golibcni add|check|del CONFLIST NETNS CONTAINERID [IFNAME]")
	}
	verb, file, netns, id := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ifname := "eth0"
	if len(os.Args) > 5 {
		ifname = os.Args[5]
	}
	list, err := libcni.ConfListFromFile(file)
	if err != nil {
		fail("%s: %v", file, err)
	}
	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = "/var/lib/cni"
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	cni := libcni.NewCNIConfigWithCacheDir(paths, cacheDir, nil)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: ifname}
	if caps := strings.TrimSpace(os.Getenv("CAP_ARGS")); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail("CAP_ARGS: %v", err)
		}
	}
	ctx := context.Background()
	switch verb {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("add: %v", err)
		}
		out, _ := json.Marshal(res)
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("check: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("del: %v", err)
		}
	default:
		fail("unknown verb %q", verb)
	}
}
