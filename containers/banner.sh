# Greets an interactive shell in a node container (`docker compose exec master-node bash`); the Dockerfile has
# /etc/bash.bashrc source it. A TUN device named tunl0 means the agent runs the kernel-backed node.
if [ -e /sys/class/net/tunl0/tun_flags ]; then
  cat <<BANNER
ipip-lab: $(hostname) is a node of a Kubernetes cluster running Calico in IPIP mode (kernel dataplane).
  This container's kernel holds tunl0, the routes Calico programs and the pods' cali veths; each pod is a network
  namespace (ip netns) serving hello-app on :8080. tunl0 is a TUN device: the ipip-lab agent does the IPIP
  encapsulation that the kernel's ipip module would, and real IPIP packets cross eth0 between the node containers.
  Not here: an API server, kubelet, container images, kube-system pods.
Try:
  kubectl get nodes -o wide             kubectl apply -f FILE      (the course's manifests: ls $(pwd))
  kubectl get pods -o wide              kubectl exec -it POD -- /bin/sh
  route                                 ip route                   ip addr          ifconfig tunl0
  ping POD-IP                           curl http://POD-IP:8080/   traceroute POD-IP
  tcpdump -ni tunl0                     tcpdump -ni eth0 ip proto 4                 ipip-lab --help
BANNER
else
  cat <<BANNER
ipip-lab: $(hostname) is an emulated node of a Kubernetes cluster running Calico in IPIP mode (userspace dataplane).
  Emulated: tunl0, the routes Calico programs, the pods' cali interfaces and the pods themselves (they answer
  ping and serve hello-app on :8080); real IPIP packets (IP protocol 4) cross eth0 between the node containers.
  Not here: an API server, kubelet, container images, kube-system pods. ip and tcpdump are the container's
  real tools (they see the real eth0 and the packets on it); ipip-lab shows the emulated node.
Try:
  kubectl get nodes -o wide             kubectl apply -f FILE      (the course's manifests: ls $(pwd))
  kubectl get pods -o wide              kubectl describe node $(hostname)
  ipip-lab route                        ipip-lab ip addr           ipip-lab ifconfig tunl0
  ipip-lab ping POD-IP --from POD       ipip-lab curl http://POD-IP:8080/ --from POD
  tcpdump -ni eth0 ip proto 4           kubectl --help             ipip-lab --help
BANNER
fi
