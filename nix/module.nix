# NixOS module: run `hyperhive serve` as a system service.
#
#   imports = [ ./path/to/hyperhive/nix/module.nix ];
#   services.hyperhive = {
#     enable = true;
#     package = pkgs.hyperhive;   # built from this repository; see nix/README.md
#     backend = "bwrap";          # or "nixos" on a host that runs nixos-containers
#   };
#
# The daemon keeps all of its state under `stateDir`; the admin socket there is the operator's
# only way in, so the directory is private to the service user. Stopping the unit sends
# SIGTERM, which stops the supervision tree in reverse order within a few seconds.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.hyperhive;
in
{
  options.services.hyperhive = {
    enable = lib.mkEnableOption "the hyperhive daemon (a swarm of Claude Code agents)";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The hyperhive Python application (provides bin/hyperhive).";
    };

    stateDir = lib.mkOption {
      type = lib.types.path;
      default = "/var/lib/hyperhive";
      description = "Where sqlite stores, sockets and every agent's directory live.";
    };

    backend = lib.mkOption {
      type = lib.types.enum [ "bwrap" "process" "nixos" ];
      default = "bwrap";
      description = ''
        How agents are contained: bubblewrap sandboxes (default), plain processes (no
        isolation), or nixos-containers (needs `nixosFlake` and root).
      '';
    };

    nixosFlake = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "For backend = nixos: the meta flake whose `agent-<name>` outputs are the agents.";
    };

    operatorPronouns = lib.mkOption {
      type = lib.types.str;
      default = "they/them";
      description = "How agents refer to the operator in their prompts.";
    };

    limits = lib.mkOption {
      type = lib.types.attrsOf (lib.types.either lib.types.int lib.types.float);
      default = { };
      example = { max_body_bytes = 65536; connections = 16; };
      description = "Resource limits to override (names and defaults in docs/limits.md).";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "hyperhive";
      description = "The account the daemon (and, for bwrap and process, every agent) runs as.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.backend != "nixos" || (cfg.nixosFlake != null && cfg.user == "root");
        message = "services.hyperhive: backend = \"nixos\" needs nixosFlake and user = \"root\".";
      }
    ];

    users.users = lib.mkIf (cfg.user != "root") {
      ${cfg.user} = {
        isSystemUser = true;
        group = cfg.user;
        home = cfg.stateDir;
      };
    };
    users.groups = lib.mkIf (cfg.user != "root") { ${cfg.user} = { }; };

    systemd.tmpfiles.rules = [ "d ${cfg.stateDir} 0700 ${cfg.user} ${cfg.user} -" ];

    systemd.services.hyperhive = {
      description = "hyperhive: a persistent swarm of Claude Code agents";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [ pkgs.git ]
        ++ lib.optionals (cfg.backend == "bwrap") [
          pkgs.bubblewrap pkgs.slirp4netns pkgs.nftables pkgs.iproute2 pkgs.util-linux
        ]
        ++ lib.optional (cfg.backend == "nixos") pkgs.nixos-container;
      environment = {
        HYPERHIVE_STATE_DIR = cfg.stateDir;
        HYPERHIVE_BACKEND = cfg.backend;
        HYPERHIVE_OPERATOR_PRONOUNS = cfg.operatorPronouns;
      } // lib.optionalAttrs (cfg.nixosFlake != null) {
        HYPERHIVE_NIXOS_FLAKE = cfg.nixosFlake;
      } // lib.optionalAttrs (cfg.limits != { }) {
        HYPERHIVE_LIMITS = lib.concatStringsSep " "
          (lib.mapAttrsToList (name: value: "${name}=${toString value}") cfg.limits);
      };
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/hyperhive serve";
        User = cfg.user;
        Restart = "on-failure";
        RestartSec = 5;
        # The daemon stops its tree within 8 s of SIGTERM; leave room before systemd kills it.
        TimeoutStopSec = 15;
        KillSignal = "SIGTERM";
        # The daemon's cgroup is its own to split: one child cgroup per agent carries that
        # agent's memory and process limits (docs/security.md).
        Delegate = "memory pids";
        # systemd's default soft limit (1024) is one busy agent's worth of connections; the
        # daemon raises its soft limit to this hard one at start and caps connections per
        # identity well below it (docs/limits.md).
        LimitNOFILE = 65536;
      };
    };
  };
}
