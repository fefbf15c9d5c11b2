# speedup-accuracy frontier (FLOP speedup): dashkit-tiny, passkey
# written by `dashkit report` / `dashkit plot` from the store; data: frontier.dat
# redraw (restyle freely): gnuplot frontier.gp   (variables below may be preset with -e)
if (!exists("pngterm")) pngterm = "pngcairo"
if (!exists("outpng")) outpng = "frontier.png"
set terminal @pngterm size 960,640 noenhanced
set output outpng
set title "dashkit-tiny: passkey (run 1)"
set xlabel "FLOP speedup (dense FLOPs / method FLOPs)"
set ylabel "score (mean, 95% bootstrap CI)"
set key outside right top
set grid
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
set arrow 1 from graph 0, first 100.0000 to graph 1, first 100.0000 nohead dt 2 lc rgb "gray40"
dat = "frontier.dat"
plot \
  dat index 0 using 4:7:8:9 with yerrorbars pt 5 ps 1.8 lc rgb "black" title "dense", \
  dat index 1 using 4:7:8:9 with yerrorbars pt 7 ps 1.2 title "dash", \
  dat index 2 using 4:7:8:9 with yerrorbars pt 7 ps 1.2 title "random", \
  dat index 3 using 4:7:8:9 with yerrorbars pt 7 ps 1.2 title "fastv", \
  dat index 5 using 1:2 with lines lw 2 dt 1 lc rgb "#555555" title "Pareto front"
unset output
