#!/usr/bin/env node
// mounted-config: prints the config file shoald reads in the pod, found the way the kubelet
// finds it in rendered manifests: the container's --config=PATH, the volumeMount that holds PATH,
// the ConfigMap volume behind that mount, and that ConfigMap's key for the file.
//
//   kubectl kustomize deploy/k8s/overlays/dev | node deploy/tools/mounted-config.js > config.json
//
// Following the chain (rather than taking any ConfigMap's config.json) means a broken link in it,
// such as a renamed ConfigMap or a moved mount, fails here instead of in the cluster.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { parseAllDocuments } from 'yaml';

function mountedConfig(objects) {
  // The workload: a StatefulSet (the manifests') or a Deployment (run-local's rewrite of it).
  const deployments = objects.filter((o) => o?.kind === 'StatefulSet' || o?.kind === 'Deployment');
  const users = deployments.flatMap((d) =>
    (d.spec?.template?.spec?.containers ?? [])
      // args: the image's ENTRYPOINT is shoald, so flags come from args, not command.
      .map((c) => ({ deployment: d, container: c, path: configFlag(c.args ?? []) }))
      .filter((u) => u.path !== undefined),
  );
  if (users.length !== 1) {
    throw new Error(`expected one container with --config, found ${users.length}`);
  }
  const { deployment, container, path } = users[0];
  const where = `${deployment.kind} ${deployment.metadata?.name} container ${container.name}`;

  // The innermost mount wins, as in the container's filesystem.
  const mount = (container.volumeMounts ?? [])
    .filter((m) => path.startsWith(`${posix.normalize(m.mountPath).replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) throw new Error(`${where}: no volumeMount holds ${path}`);
  if (mount.subPath) throw new Error(`${where}: ${mount.mountPath} uses subPath (never updated)`);
  const file = posix.relative(mount.mountPath, path);

  const volume = (deployment.spec.template.spec.volumes ?? []).find((v) => v.name === mount.name);
  if (!volume?.configMap) throw new Error(`${where}: volume ${mount.name} is not a ConfigMap`);
  const { name, items } = volume.configMap;
  // With `items`, only the listed keys appear, each at its own path.
  const key = items ? items.find((i) => i.path === file)?.key : file;
  if (key === undefined) throw new Error(`${where}: ConfigMap volume ${name} has no ${file}`);

  const namespace = deployment.metadata?.namespace;
  const configMap = objects.find(
    (o) =>
      o?.kind === 'ConfigMap' && o.metadata?.name === name && o.metadata?.namespace === namespace,
  );
  if (!configMap) throw new Error(`${where}: no ConfigMap ${name} in the manifests`);
  const content = configMap.data?.[key];
  if (typeof content !== 'string') throw new Error(`ConfigMap ${name} has no data key ${key}`);
  return content;
}

// Abseil takes both --config=PATH and --config PATH.
function configFlag(args) {
  for (const [i, arg] of args.entries()) {
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
    if (arg === '--config') return args[i + 1];
  }
  return undefined;
}

try {
  const input = readFileSync(process.argv[2] ?? 0, 'utf8');
  const docs = parseAllDocuments(input);
  const broken = docs.find((d) => d.errors.length > 0);
  if (broken) throw broken.errors[0];
  process.stdout.write(mountedConfig(docs.map((d) => d.toJS())));
} catch (e) {
  console.error(`mounted-config: ${e.message}`);
  process.exitCode = 1;
}
