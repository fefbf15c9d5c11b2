# delta percentile bands per layer: dashkit-tiny
# written by `dashkit report` / `dashkit plot` from the store; data: analysis_delta_dashkit-tiny.dat
# redraw (restyle freely): gnuplot analysis_delta_dashkit-tiny.gp   (variables below may be preset with -e)
if (!exists("pngterm")) pngterm = "pngcairo"
if (!exists("outpng")) outpng = "analysis_delta_dashkit-tiny.png"
if (!exists("outsvg")) outsvg = "analysis_delta_dashkit-tiny.svg"
set terminal @pngterm size 960,640 noenhanced
set output outpng
set title "dashkit-tiny: delta_t = |U_t| per layer (bands p10-p90, p25-p75; median; p1/p99 dashed)"
set xlabel "layer"
set ylabel "|U|"
set logscale y
set grid
set key top left
set xtics 1
set arrow from 3, graph 0 to 3, graph 1 nohead dt 3 lc rgb "gray40"
plot "analysis_delta_dashkit-tiny.dat" using 1:3:7 with filledcurves fc rgb "#c6dbef" title "p10-p90", \
  "" using 1:4:6 with filledcurves fc rgb "#6baed6" title "p25-p75", \
  "" using 1:5 with linespoints lw 2 lc rgb "#08306b" title "median", \
  "" using 1:2 with lines dt 2 lc rgb "gray30" title "p1", \
  "" using 1:8 with lines dt 2 lc rgb "gray30" title "p99"
set terminal svg size 960,640 dynamic noenhanced
set output outsvg
replot
unset output
