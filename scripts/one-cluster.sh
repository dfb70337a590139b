# Sourced by the measuring scripts: writes the config of a proxy in front
# of one cluster, every topic routed to it.
# one_cluster_config FILE LISTEN PORT_BASE BROKER WORKDIR NAME [METRICS]
one_cluster_config() {
    local metrics=""
    [ -n "${7:-}" ] && metrics="metrics_listen = \"$7\""
    cat >"$1" <<EOT
[proxy]
listen = "$2"
advertised_host = "127.0.0.1"
broker_port_base = $3
$metrics
cluster_id = "switchyard-$6"
admin_socket = "$5/admin.sock"
state_file = "$5/state.json"

[clusters.only]
bootstrap = ["$4"]
node_id_base = 0

[routes]
default = "only"
EOT
}
