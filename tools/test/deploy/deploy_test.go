// Package deploy validates what can be validated here of the deployment
// files without a Docker engine or a cluster: the kustomize base renders and
// every object decodes strictly into its Kubernetes type; the compose file
// parses and names its services; the Grafana dashboard queries only metrics
// the processes define.
package deploy

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/realtime/realtime/internal/cli"
	"github.com/realtime/realtime/pkg/gateway"
	"github.com/realtime/realtime/pkg/worker"
)

// serviceMonitor is the part of the Prometheus Operator's type we use; it is
// decoded strictly too.
type serviceMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels      map[string]string `json:"matchLabels"`
			MatchExpressions []struct {
				Key      string   `json:"key"`
				Operator string   `json:"operator"`
				Values   []string `json:"values"`
			} `json:"matchExpressions"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func TestKustomizeRendersStrictObjects(t *testing.T) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), "../../../deploy/k8s")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var deployments []appsv1.Deployment
	var services []*corev1.Service
	var monitor serviceMonitor
	var config corev1.ConfigMap
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		var obj any
		switch head.APIVersion + " " + head.Kind {
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "v1 ConfigMap":
			obj = &config
		case "v1 Service":
			services = append(services, &corev1.Service{})
			obj = services[len(services)-1]
		case "apps/v1 Deployment":
			deployments = append(deployments, appsv1.Deployment{})
			obj = &deployments[len(deployments)-1]
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = &monitor
		default:
			t.Fatalf("unexpected object %s %s", head.APIVersion, head.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Errorf("%s does not decode strictly: %v", head.Kind, err)
		}
		if svc, ok := obj.(*corev1.Service); ok && svc.Spec.SessionAffinity != "" && svc.Spec.SessionAffinity != corev1.ServiceAffinityNone {
			t.Errorf("service %s is sticky", svc.Name)
		}
		kinds[head.Kind]++
	}
	for kind, n := range map[string]int{"Deployment": 2, "Service": 3, "ConfigMap": 1, "HorizontalPodAutoscaler": 2,
		"PodDisruptionBudget": 2, "ServiceMonitor": 1} {
		if kinds[kind] != n {
			t.Errorf("%d %s, want %d", kinds[kind], kind, n)
		}
	}
	drain := parse(t, config.Data["GATEWAY_DRAIN_DELAY"]) + parse(t, config.Data["GATEWAY_DRAIN_TIMEOUT"])
	for _, d := range deployments {
		spec := d.Spec.Template.Spec
		c := spec.Containers[0]
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil {
			t.Errorf("%s: probes %+v", d.Name, c.ReadinessProbe)
		}
		if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s may run as root", d.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s has no resources", d.Name)
		}
		if slices.ContainsFunc(c.Command, func(a string) bool { return strings.HasPrefix(a, "-pprof") }) {
			t.Errorf("%s serves the profiler: %q", d.Name, c.Command)
		}
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admin" }) {
			t.Errorf("%s has no admin port for its probes", d.Name)
		}
		if d.Name == "gateway" && time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= drain {
			t.Errorf("gateway grace period %ds does not cover the drain (%v)", *spec.TerminationGracePeriodSeconds, drain)
		}
	}
	checkAdminServices(t, services, &monitor)
}

// checkAdminServices: the admin listeners are reachable through headless
// admin Services only, which the ServiceMonitor selects and which carry no
// client port; the client Service carries no admin port (issue 16).
func checkAdminServices(t *testing.T, services []*corev1.Service, monitor *serviceMonitor) {
	t.Helper()
	sel := monitor.Spec.Selector
	selects := func(svc *corev1.Service) bool {
		for k, v := range sel.MatchLabels {
			if svc.Labels[k] != v {
				return false
			}
		}
		for _, e := range sel.MatchExpressions {
			if e.Operator != "In" || !slices.Contains(e.Values, svc.Labels[e.Key]) {
				return false
			}
		}
		return true
	}
	if len(sel.MatchLabels) == 0 {
		t.Error("the ServiceMonitor selects by name only: it would select the client Service too")
	}
	adminPort := func(p corev1.ServicePort) bool {
		return p.Name == "admin" || p.TargetPort.String() == "admin" || p.Port == 8100 || p.Port == 8110
	}
	scraped := map[string]bool{}
	clients := 0
	for _, svc := range services {
		admin := slices.ContainsFunc(svc.Spec.Ports, adminPort)
		onlyAdmin := !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return !adminPort(p) })
		switch {
		case selects(svc):
			if !onlyAdmin || svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("scraped service %s: ports %+v, clusterIP %q, type %q: want admin ports only, headless, in-cluster",
					svc.Name, svc.Spec.Ports, svc.Spec.ClusterIP, svc.Spec.Type)
			}
			scraped[svc.Labels["app.kubernetes.io/name"]] = true
		case admin:
			t.Errorf("service %s carries the admin port beside other traffic: %+v", svc.Name, svc.Spec.Ports)
		default:
			clients++
		}
	}
	if !scraped["gateway"] || !scraped["worker"] || clients != 1 {
		t.Errorf("scraped %v, %d client services; want gateway and worker scraped, one client service", scraped, clients)
	}
}

func parse(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command []string `json:"command"`
			Ports   []string `json:"ports"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"redis", "gateway1", "gateway2", "worker", "lb", "prometheus", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	if !slices.Contains(compose.Services["lb"].Ports, "8080:8080") {
		t.Errorf("the balancer does not publish 8080")
	}
	// The gateways and the worker publish nothing: clients come through
	// the balancer, and the admin listeners stay on the compose network.
	for _, svc := range []string{"gateway1", "gateway2", "worker"} {
		if p := compose.Services[svc].Ports; len(p) > 0 {
			t.Errorf("%s publishes %v", svc, p)
		}
		if slices.ContainsFunc(compose.Services[svc].Command, func(a string) bool { return strings.HasPrefix(a, "-pprof") }) {
			t.Errorf("%s serves the profiler", svc)
		}
	}
	// Prometheus scrapes every process on the admin address its command sets.
	prom, err := os.ReadFile("../../../deploy/compose/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The compose file keeps the commands' default admin ports.
	gwPort, wkPort := portOf(t, cli.DefaultGatewayAdminAddr), portOf(t, cli.DefaultWorkerAdminAddr)
	for svc, port := range map[string]string{"gateway1": gwPort, "gateway2": gwPort, "worker": wkPort} {
		if !strings.Contains(string(prom), `"`+svc+`:`+port+`"`) {
			t.Errorf("prometheus does not scrape %s:%s", svc, port)
		}
		if cmd := strings.Join(compose.Services[svc].Command, " "); !strings.Contains(cmd, "-admin-addr :"+port) {
			t.Errorf("%s does not listen for admin on %s: %s", svc, port, cmd)
		}
	}
	if _, err := exec.LookPath("haproxy"); err == nil {
		if out, err := exec.Command("haproxy", "-c", "-f", "../../../deploy/compose/haproxy.cfg").CombinedOutput(); err != nil {
			t.Errorf("compose haproxy.cfg: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("haproxy is not installed (CI: nothing may skip)")
	}
}

// The image exposes the client port only (docker run -P publishes every
// exposed port), and its command serves no profiler.
func TestDockerfileExposesNoAdminPort(t *testing.T) {
	raw, err := os.ReadFile("../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	admin := []string{portOf(t, cli.DefaultGatewayAdminAddr), portOf(t, cli.DefaultWorkerAdminAddr)}
	exposed := 0
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "EXPOSE":
			for _, p := range f[1:] {
				port, _, _ := strings.Cut(p, "/")
				if slices.Contains(admin, port) {
					t.Errorf("the image exposes the admin port %s", p)
				}
				exposed++
			}
		case "CMD", "ENTRYPOINT":
			if strings.Contains(line, "-pprof") {
				t.Errorf("the image serves the profiler: %s", line)
			}
		}
	}
	if exposed == 0 {
		t.Error("the image exposes no port")
	}
}

// The compose balancer is the shipped deploy/haproxy/haproxy.cfg but for
// its bind, server and default-server lines (the compose service names,
// resolved when they come up): the same timeouts, retries (POSTs included,
// with their bodies buffered) and health checks.
func TestComposeHAProxyMatchesShipped(t *testing.T) {
	directives := func(path string) []string {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if f := strings.Fields(line)[0]; f == "bind" || f == "server" || f == "default-server" {
				continue
			}
			out = append(out, line)
		}
		return out
	}
	shipped, compose := directives("../../../deploy/haproxy/haproxy.cfg"), directives("../../../deploy/compose/haproxy.cfg")
	if !slices.Equal(shipped, compose) {
		t.Errorf("deploy/compose/haproxy.cfg differs from deploy/haproxy/haproxy.cfg:\n%q\n%q", compose, shipped)
	}
	for _, want := range []string{"retry-on conn-failure empty-response", "option http-buffer-request"} {
		if !slices.Contains(shipped, want) {
			t.Errorf("the shipped haproxy.cfg lacks %q", want)
		}
	}
	for _, line := range shipped {
		if strings.Contains(line, "disable-l7-retry") {
			t.Errorf("the shipped haproxy.cfg keeps requests from being retried: %q", line)
		}
	}
}

// portOf returns the port of the host:port address addr.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return port
}

// definedMetrics returns the metric names the gateway and worker define.
func definedMetrics() map[string]bool {
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, m := range []any{gateway.NewMetrics(nil), worker.NewMetrics(nil)} {
		v := reflect.ValueOf(m).Elem()
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			c, ok := v.Field(i).Interface().(prometheus.Collector)
			if !ok {
				continue
			}
			ch := make(chan *prometheus.Desc, 16)
			go func() { c.Describe(ch); close(ch) }()
			for d := range ch {
				if m := re.FindStringSubmatch(d.String()); m != nil {
					names[m[1]] = true
				}
			}
		}
	}
	return names
}

func TestDashboardQueriesDefinedMetrics(t *testing.T) {
	raw, err := os.ReadFile("../../../deploy/grafana/dashboards/realtime.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics()
	if len(defined) < 15 {
		t.Fatalf("only %d metrics found: %v", len(defined), defined)
	}
	used := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`realtime_[a-z_]+`).FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !defined[base] {
					t.Errorf("panel %q queries %s, which no process exports", p.Title, name)
				}
				used++
			}
		}
	}
	if used == 0 {
		t.Fatal("the dashboard queries nothing")
	}
}
