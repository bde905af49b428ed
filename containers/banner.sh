# Greets an interactive shell in a node container (`docker compose exec master-node bash`); the Dockerfile has
# /etc/bash.bashrc source it.
cat <<BANNER
ipip-lab: $(hostname) is an emulated node of a Kubernetes cluster running Calico in IPIP mode.
  Emulated: tunl0, the routes Calico programs, the pods' cali interfaces and the pods themselves (they answer
  ping and serve hello-app on :8080); real IPIP packets (IP protocol 4) cross eth0 between the node containers.
  Not here: an API server, kubelet, container images, kube-system pods. ip and tcpdump are the container's
  real tools (they see the real eth0 and the packets on it); ipip-lab shows the emulated node.
Try:
  kubectl get nodes -o wide             kubectl apply -f FILE      (the course's manifests: ls $(pwd))
  kubectl get pods -o wide              kubectl describe node $(hostname)
  route  (or ipip-lab route)           ipip-lab ip addr           ifconfig tunl0
  ipip-lab ping POD-IP --from POD       ipip-lab curl http://POD-IP:8080/ --from POD
  tcpdump -ni eth0 ip proto 4           kubectl --help             ipip-lab --help
BANNER
