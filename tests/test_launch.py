"""The launch scripts: bash syntax, and what each builds for the cluster
(cloud tools replaced by stubs that record their arguments)."""

import glob
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(glob.glob(os.path.join(REPO, 'launch', '*.sh'))
                 + glob.glob(os.path.join(REPO, 'launch', '*.sbatch')))
BASH = shutil.which('bash')
pytestmark = pytest.mark.skipif(BASH is None, reason='no bash')


def test_there_are_launch_scripts():
  names = {os.path.basename(s) for s in SCRIPTS}
  assert {'gpu.sh', 'tpu_vm.sh', 'slurm_multihost.sbatch',
          'xpk_tpu.sh'} <= names


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_syntax_and_a_checked_against_header(script):
  proc = subprocess.run([BASH, '-n', script], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  with open(script) as f:
    assert 'Checked against:' in f.read()


def _stub(folder, name, body):
  path = os.path.join(folder, name)
  with open(path, 'w') as f:
    f.write('#!/usr/bin/env bash\n' + body)
  os.chmod(path, 0o755)


def _run(script, args, env, tmp_path):
  env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', **env)
  return subprocess.run([BASH, os.path.join(REPO, 'launch', script), *args],
                        env=env, capture_output=True, text=True, timeout=60)


def _recorder(tmp_path, name):
  # Writes each argument on its own line; --command's value to command.sh.
  _stub(str(tmp_path), name, f"""
for a in "$@"; do
  case "$a" in
    --command=*) printf '%s\\n' "${{a#--command=}}" > {tmp_path}/command.sh;;
    *) printf '%s\\n' "$a" >> {tmp_path}/{name}.args;;
  esac
done
""")


def _command(tmp_path):
  script = (tmp_path / 'command.sh').read_text()
  proc = subprocess.run([BASH, '-n', str(tmp_path / 'command.sh')],
                        capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  return script


def test_tpu_vm_defines_what_it_runs_and_quotes_overrides(tmp_path):
  _recorder(tmp_path, 'gcloud')
  proc = _run('tpu_vm.sh', ['my-tpu', 'us-central2-b', 'configs/emodna.py',
                            'gs://b/runs/x', '--config.data.source=casia,emovo',
                            '--config.model.name=cnn tcn'],
              {'JAXSER_REPO': 'https://example.org/jaxser.git',
               'JAXSER_REF': 'abc123', 'JAXSER_DATA_GCS': 'gs://b/corpora'},
              tmp_path)
  assert proc.returncode == 0, proc.stderr
  args = (tmp_path / 'gcloud.args').read_text().split('\n')
  assert args[:7] == ['compute', 'tpus', 'tpu-vm', 'ssh', 'my-tpu',
                      '--zone=us-central2-b', '--worker=all']
  command = _command(tmp_path)
  assert 'git clone -q https://example.org/jaxser.git ~/jaxser' in command
  assert 'git checkout -q abc123' in command
  assert 'gcloud storage rsync --recursive gs://b/corpora' in command
  assert ('python3 -m jaxser.main --distributed --config=configs/emodna.py '
          '--workdir=gs://b/runs/x') in command
  assert r'--config.model.name=cnn\ tcn' in command
  assert '$REPO' not in command


def test_tpu_vm_refuses_a_local_workdir(tmp_path):
  _recorder(tmp_path, 'gcloud')
  proc = _run('tpu_vm.sh', ['t', 'z', 'configs/emodna.py', '/tmp/run'],
              {'JAXSER_REPO': 'x'}, tmp_path)
  assert proc.returncode == 2
  assert 'gs://' in proc.stderr
  assert not (tmp_path / 'gcloud.args').exists()


def test_slurm_gives_each_process_all_gpus_of_its_node(tmp_path):
  _stub(str(tmp_path), 'scontrol', 'echo gpu-a01; echo gpu-a02\n')
  _stub(str(tmp_path), 'srun', f"""
printf '%s\\n' "$@" > {tmp_path}/srun.args
echo "$JAX_LOCAL_DEVICE_IDS $JAX_COORDINATOR_ADDRESS" > {tmp_path}/srun.env
""")
  proc = _run('slurm_multihost.sbatch', ['configs/emodna.py', '/shared/run',
                                         '--config.seed=3'],
              {'SLURM_GPUS_ON_NODE': '4', 'SLURM_JOB_NODELIST': 'gpu-a[01-02]',
               'SLURM_JOB_ID': '12345'}, tmp_path)
  assert proc.returncode == 0, proc.stderr
  # jax's own port for job 12345: 12345 % 4096 + 61440.
  assert (tmp_path / 'srun.env').read_text().split() == [
      '0,1,2,3', 'gpu-a01:61497']
  args = (tmp_path / 'srun.args').read_text().split('\n')
  assert '--ntasks-per-node=1' in args and '--gpus-per-node=4' in args
  assert args[args.index('python'):args.index('python') + 7] == [
      'python', '-m', 'jaxser.main', '--distributed',
      '--config=configs/emodna.py', '--workdir=/shared/run',
      '--config.seed=3']
  with open(os.path.join(REPO, 'launch', 'slurm_multihost.sbatch')) as f:
    directives = [l for l in f if l.startswith('#SBATCH')]
  assert '#SBATCH --ntasks-per-node=1\n' in directives


def test_xpk_submits_a_workload_from_a_local_base_image(tmp_path):
  _recorder(tmp_path, 'xpk')
  _stub(str(tmp_path), 'docker', f'echo "$@" >> {tmp_path}/docker.args\n')
  proc = _run('xpk_tpu.sh', ['my-cluster', 'v6e-16', 'configs/emodna.py',
                             'gs://b/runs/x', '--config.seed=1'],
              {'XPK_PROJECT': 'p', 'XPK_ZONE': 'us-east5-b',
               'XPK_WORKLOAD': 'w1'}, tmp_path)
  assert proc.returncode == 0, proc.stderr
  args = (tmp_path / 'xpk.args').read_text().split('\n')
  for a in ('workload', 'create', '--cluster=my-cluster', '--workload=w1',
            '--device-type=v6e-16', '--num-slices=1',
            '--base-docker-image=jaxser-tpu-base', f'--script-dir={REPO}',
            '--project=p', '--zone=us-east5-b'):
    assert a in args
  assert 'tag us-docker.pkg.dev/cloud-tpu-images/jax-ai-image/tpu:latest ' \
         'jaxser-tpu-base' in (tmp_path / 'docker.args').read_text()
  command = _command(tmp_path)
  assert ('python3 -m jaxser.main --distributed --config=configs/emodna.py '
          '--workdir=gs://b/runs/x') in command
