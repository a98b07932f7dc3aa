"""`python -m bot.cli ...`: the `csbot` command as a module, which is what launchers that
start several processes take (`csbot` itself is a console script, not a module):

    torchrun --standalone --nproc_per_node 2 -m bot.cli finetune train --pairs pairs/ --out runs/r1
    accelerate launch --multi_gpu --num_processes 2 -m bot.cli finetune train --pairs pairs/ --out runs/r1
"""

from bot.cli import app

if __name__ == "__main__":
    app(prog_name="csbot")
