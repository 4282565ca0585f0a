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
	res, err := k.Run(filesys.MakeFsOnDisk(), "../../deploy/k8s")
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var deployments []appsv1.Deployment
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
			obj = &corev1.Service{}
		case "apps/v1 Deployment":
			deployments = append(deployments, appsv1.Deployment{})
			obj = &deployments[len(deployments)-1]
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = &serviceMonitor{}
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
	for kind, n := range map[string]int{"Deployment": 2, "Service": 2, "ConfigMap": 1, "HorizontalPodAutoscaler": 2,
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
		if d.Name == "gateway" && time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= drain {
			t.Errorf("gateway grace period %ds does not cover the drain (%v)", *spec.TerminationGracePeriodSeconds, drain)
		}
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
	raw, err := os.ReadFile("../../docker-compose.yml")
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
	// Prometheus scrapes every process on the admin address its command sets.
	prom, err := os.ReadFile("../../deploy/compose/prometheus.yml")
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
		if out, err := exec.Command("haproxy", "-c", "-f", "../../deploy/compose/haproxy.cfg").CombinedOutput(); err != nil {
			t.Errorf("compose haproxy.cfg: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("haproxy is not installed (CI: nothing may skip)")
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
	raw, err := os.ReadFile("../../deploy/grafana/dashboards/realtime.json")
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
